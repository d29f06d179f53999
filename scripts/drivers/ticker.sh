#!/usr/bin/env bash
# ticker: an example switchyard driver in plain bash, speaking the dipper protocol on
# stdin/stdout (see codecs/PROTOCOL.md, "Envelopes").
#
#   argv: ticker.sh <service> [interval_seconds]
#
# - says `state alive` on `command start`, `state stopped` on `command stop`;
# - emits `eventbus message` {"events":["ticker.tick"],"data":{"tick":N,"parity":"even|odd"}}
#   every interval once started;
# - RPC methods: `echo` (returns the payload), `hello` (returns "hello, <payload>");
#   any other method returns an `error` label;
# - command `log`: writes the payload to stderr (the broker logs it) and returns success.
# Logs go to stderr (warnings) and fd 3 (info), as drivers on the reference library do.
set -u
export LC_ALL=C # lengths in bytes, not characters
interval="${2:-5}"
ticker_pid=""

info() { { printf '%s\n' "$*" >&3; } 2>/dev/null || true; }

# send <channel> <subject> <payload> [label value]...
send() {
    local ch="$1" subj="$2" payload="$3"
    shift 3
    local n=$(($# / 2)) labels=""
    while [ $# -ge 2 ]; do
        labels+="$1 ${#2}"$'\n'"$2"
        shift 2
    done
    # One printf: one write(2), so frames from the ticker loop never interleave.
    printf '%s %s %d %d\n%s%s' "$ch" "$subj" "$n" "${#payload}" "$labels" "$payload"
}

tick() {
    local n=0 parity
    while sleep "$interval"; do
        n=$((n + 1))
        parity=odd
        [ $((n % 2)) -eq 0 ] && parity=even
        send eventbus message "{\"events\":[\"ticker.tick\"],\"data\":{\"tick\":$n,\"parity\":\"$parity\"}}" \
            eventID "tick-$$-$n"
    done
}

info "ticker driver started as $1, interval ${interval}s"
while IFS=' ' read -r ch subj nlabels size; do
    ch="${ch%$'\r'}"
    declare -A label=()
    for ((i = 0; i < nlabels; i++)); do
        IFS=' ' read -r lname llen || exit 1
        lval=""
        [ "${llen:-0}" -gt 0 ] && { IFS= read -r -N "$llen" lval || exit 1; }
        label["$lname"]="$lval"
    done
    payload=""
    [ "${size:-0}" -gt 0 ] && { IFS= read -r -N "$size" payload || exit 1; }
    case "$ch:$subj" in
    command:options) info "options: $payload" ;;
    command:start)
        if [ -z "$ticker_pid" ]; then
            tick &
            ticker_pid=$!
        fi
        send state alive ""
        ;;
    command:stop)
        [ -n "$ticker_pid" ] && kill "$ticker_pid" 2>/dev/null
        ticker_pid=""
        send state stopped ""
        ;;
    command:ping) send state alive "" ;;
    rpc:call)
        id="${label[rpcID]:-}" caller="${label[caller]:-}" method="${label[method]:-}"
        [ "$id" = skip ] && continue
        case "$method" in
        echo) send rpc return "$payload" rpcID "$id" caller "$caller" ;;
        hello) send rpc return "hello, $payload" rpcID "$id" caller "$caller" ;;
        *) send rpc return "" rpcID "$id" caller "$caller" error "ticker has no method $method" ;;
        esac
        ;;
    eventbus:command)
        echo "ticker: ${label[method]:-?}: $payload" >&2
        if [ -n "${label[sessionID]:-}" ]; then
            send eventbus return "" sessionID "${label[sessionID]}" method "${label[method]:-}" status success
        fi
        ;;
    *) info "skipping $ch:$subj" ;;
    esac
done
# The broker closed stdin: stop the ticker and exit, as the reference library does.
[ -n "$ticker_pid" ] && kill "$ticker_pid" 2>/dev/null
echo "ticker: daemon closed channel" >&2
exit 1
