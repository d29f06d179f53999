#!/usr/bin/env bash
# bacon: korecomm's `!bacon` as a switchyard chat plugin in plain bash (framing in dipper.sh).
#
#   !bacon          "gives <you> a strip of delicious bacon."
#   !bacon <nick>   "gives <nick> a strip of delicious bacon as a gift from <you>"
#   !bacon_count    how many strips were given since the plugin started
#   !bacon_reset    (admins only) sets the count back to 0
#
# A chat plugin is a driver: the engine calls its RPC method `manifest` once it is alive,
# then one RPC method per command, with {command, text, args, argv, adapter, room, user,
# nick}; the plugin returns {"replies": [...]}.
set -u
. "$(dirname "$0")/dipper.sh"
given=0

manifest='{"name":"bacon","version":"1","commands":[
{"name":"bacon","patterns":["","(?P<nick>\\S+)"],"usage":"!bacon [nick]","help":"gives you, or nick, a strip of delicious bacon"},
{"name":"bacon_count","patterns":[""],"usage":"!bacon_count","help":"strips given since the plugin started"},
{"name":"bacon_reset","patterns":[""],"usage":"!bacon_reset","help":"sets the count back to 0","admin":true}]}'

reply() { printf '{"replies":[%s]}' "$(json_str "$1")"; }

dipper_info "bacon plugin started as $1"
while dipper_read; do
    case "$ch:$subj" in
    command:start | command:ping) dipper_send state alive "" ;;
    command:stop) dipper_send state stopped "" ;;
    rpc:call)
        id="${label[rpcID]:-}" caller="${label[caller]:-}" method="${label[method]:-}"
        [ "$id" = skip ] && continue
        who="" gift=""
        [[ $payload =~ \"command\":\"[^\"]*\",\"nick\":\"(([^\"\\]|\\.)*)\" ]] && who="${BASH_REMATCH[1]}"
        [[ $payload =~ \"args\":\{\"nick\":\"(([^\"\\]|\\.)*)\"\} ]] && gift="${BASH_REMATCH[1]}"
        case "$method" in
        manifest) out="$manifest" ;;
        bacon)
            given=$((given + 1))
            if [ -n "$gift" ]; then
                out=$(reply "gives $gift a strip of delicious bacon as a gift from $who")
            else
                out=$(reply "gives $who a strip of delicious bacon.")
            fi
            ;;
        bacon_count) out=$(reply "$given strips of bacon given so far") ;;
        bacon_reset)
            out=$(reply "bacon count reset (was $given)")
            given=0
            ;;
        *)
            dipper_send rpc return "" rpcID "$id" caller "$caller" error "bacon has no command $method"
            continue
            ;;
        esac
        dipper_send rpc return "$out" rpcID "$id" caller "$caller"
        ;;
    *) dipper_info "skipping $ch:$subj" ;;
    esac
done
echo "bacon: daemon closed channel" >&2
exit 1
