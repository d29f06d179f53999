#!/usr/bin/env bash
# quotes: a chat plugin that keeps its state in a topic, so it survives restarts.
#
#   !quote                a random quote
#   !quote <n>            quote number n
#   !quote add <text>     adds a quote (appended to the topic `quotes`)
#
# On start it replays the topic through the broker's RPC method `fetch`; `!quote add`
# appends through `publish` and answers once the broker has acknowledged the record.
# Quotes are kept JSON-escaped, exactly as they travel, so nothing is decoded.
set -u
. "$(dirname "$0")/dipper.sh"
topic="${2:-quotes}"
quotes=()
next_id=0
declare -A adding=() # our publish rpcID -> "invocation rpcID|caller|escaped text"

manifest='{"name":"quotes","version":"1","commands":[
{"name":"quote","patterns":["","(?P<n>\\d+)","add\\s+(?P<text>.+)"],"usage":"!quote [n | add <text>]","help":"quotes, kept in a topic across restarts"}]}'

call_broker() { # method params -> sends, echoes the rpcID
    next_id=$((next_id + 1))
    dipper_send rpc call "$2" rpcID "q$next_id" feature broker method "$1" caller -
}

replay_from() { call_broker fetch "{\"topic\":\"$topic\",\"from\":$1}"; }

reply() { dipper_send rpc return "{\"replies\":[\"$1\"]}" rpcID "$2" caller "$3"; }

dipper_info "quotes plugin started as $1, topic $topic"
while dipper_read; do
    case "$ch:$subj" in
    command:start)
        quotes=()
        replay_from 0
        dipper_send state alive ""
        ;;
    command:ping) dipper_send state alive "" ;;
    command:stop) dipper_send state stopped "" ;;
    rpc:return)
        id="${label[rpcID]:-}"
        if [ -n "${adding[$id]:-}" ]; then
            IFS='|' read -r inv caller text <<<"${adding[$id]}"
            unset "adding[$id]"
            if [ -n "${label[error]:-}" ]; then
                reply "could not add the quote (the broker said no; see its log)" "$inv" "$caller"
            else
                quotes+=("$text")
                reply "added quote #${#quotes[@]}" "$inv" "$caller"
            fi
        elif [ -z "${label[error]:-}" ]; then
            # A replay page: every value, in offset order; then the next page.
            rest="$payload" n=0
            while [[ $rest =~ \"value\":\"(([^\"\\]|\\.)*)\" ]]; do
                quotes+=("${BASH_REMATCH[1]}")
                rest="${rest#*"${BASH_REMATCH[0]}"}"
                n=$((n + 1))
            done
            if [ "$n" -gt 0 ] && [[ $payload =~ \"next\":([0-9]+) ]]; then
                replay_from "${BASH_REMATCH[1]}"
            else
                dipper_info "replayed ${#quotes[@]} quotes from topic $topic"
            fi
        else
            dipper_info "nothing to replay: ${label[error]}"
        fi
        ;;
    rpc:call)
        inv="${label[rpcID]:-}" caller="${label[caller]:-}" method="${label[method]:-}"
        case "$method" in
        manifest) dipper_send rpc return "$manifest" rpcID "$inv" caller "$caller" ;;
        quote)
            if [[ $payload =~ \"args\":\{\"text\":\"(([^\"\\]|\\.)*)\"\} ]]; then
                text="${BASH_REMATCH[1]}"
                call_broker publish "{\"topic\":\"$topic\",\"value\":\"$text\"}"
                adding["q$next_id"]="$inv|$caller|$text"
            elif [ ${#quotes[@]} -eq 0 ]; then
                reply "no quotes yet; add one with !quote add <text>" "$inv" "$caller"
            elif [[ $payload =~ \"args\":\{\"n\":\"([0-9]+)\"\} ]]; then
                n="${BASH_REMATCH[1]}"
                if [ "$n" -ge 1 ] && [ "$n" -le ${#quotes[@]} ]; then
                    reply "#$n: ${quotes[$((n - 1))]}" "$inv" "$caller"
                else
                    reply "there are ${#quotes[@]} quotes" "$inv" "$caller"
                fi
            else
                n=$((RANDOM % ${#quotes[@]} + 1))
                reply "#$n: ${quotes[$((n - 1))]}" "$inv" "$caller"
            fi
            ;;
        *) dipper_send rpc return "" rpcID "$inv" caller "$caller" error "quotes has no command $method" ;;
        esac
        ;;
    *) dipper_info "skipping $ch:$subj" ;;
    esac
done
echo "quotes: daemon closed channel" >&2
exit 1
