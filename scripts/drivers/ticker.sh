#!/usr/bin/env bash
# ticker: an example switchyard driver in plain bash (framing in dipper.sh).
#
#   argv: ticker.sh <service> [interval_seconds]
#
# - says `state alive` on `command start`, `state stopped` on `command stop`;
# - emits `eventbus message` {"events":["ticker.tick"],"data":{"tick":N,"parity":"even|odd"}}
#   every interval once started;
# - RPC methods: `echo` (returns the payload), `hello` (returns "hello, <payload>");
#   any other method returns an `error` label;
# - command `log`: writes the payload to stderr (the broker logs it) and returns success.
set -u
. "$(dirname "$0")/dipper.sh"
interval="${2:-5}"
ticker_pid=""

tick() {
    local n=0 parity
    while sleep "$interval"; do
        n=$((n + 1))
        parity=odd
        [ $((n % 2)) -eq 0 ] && parity=even
        dipper_send eventbus message "{\"events\":[\"ticker.tick\"],\"data\":{\"tick\":$n,\"parity\":\"$parity\"}}" \
            eventID "tick-$$-$n"
    done
}

dipper_info "ticker driver started as $1, interval ${interval}s"
while dipper_read; do
    case "$ch:$subj" in
    command:options) dipper_info "options: $payload" ;;
    command:start)
        if [ -z "$ticker_pid" ]; then
            tick &
            ticker_pid=$!
        fi
        dipper_send state alive ""
        ;;
    command:stop)
        [ -n "$ticker_pid" ] && kill "$ticker_pid" 2>/dev/null
        ticker_pid=""
        dipper_send state stopped ""
        ;;
    command:ping) dipper_send state alive "" ;;
    rpc:call)
        id="${label[rpcID]:-}" caller="${label[caller]:-}" method="${label[method]:-}"
        [ "$id" = skip ] && continue
        case "$method" in
        echo) dipper_send rpc return "$payload" rpcID "$id" caller "$caller" ;;
        hello) dipper_send rpc return "hello, $payload" rpcID "$id" caller "$caller" ;;
        *) dipper_send rpc return "" rpcID "$id" caller "$caller" error "ticker has no method $method" ;;
        esac
        ;;
    eventbus:command)
        echo "ticker: ${label[method]:-?}: $payload" >&2
        if [ -n "${label[sessionID]:-}" ]; then
            dipper_send eventbus return "" sessionID "${label[sessionID]}" method "${label[method]:-}" status success
        fi
        ;;
    *) dipper_info "skipping $ch:$subj" ;;
    esac
done
# The broker closed stdin: stop the ticker and exit, as the reference library does.
[ -n "$ticker_pid" ] && kill "$ticker_pid" 2>/dev/null
echo "ticker: daemon closed channel" >&2
exit 1
