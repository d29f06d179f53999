# dipper.sh: the dipper envelope on stdin/stdout for drivers written in bash.
# Source it, then:
#   dipper_read            reads one frame into $ch, $subj, $payload and the array label[...];
#                          returns 1 at the end of input
#   dipper_send CH SUBJ PAYLOAD [NAME VALUE]...   writes one frame
#   dipper_info TEXT       logs at INFO (fd 3, where the broker logs it under the driver)
# Wire format: codecs/PROTOCOL.md, "Dipper envelopes".
export LC_ALL=C # lengths in bytes, not characters
declare -A label=()

dipper_info() { { printf '%s\n' "$*" >&3; } 2>/dev/null || true; }

dipper_send() {
    local c="$1" s="$2" p="$3"
    shift 3
    local n=$(($# / 2)) labels=""
    while [ $# -ge 2 ]; do
        labels+="$1 ${#2}"$'\n'"$2"
        shift 2
    done
    # One printf: one write(2), so frames from background loops never interleave.
    printf '%s %s %d %d\n%s%s' "$c" "$s" "$n" "${#p}" "$labels" "$p"
}

dipper_read() {
    local nlabels size lname llen lval i
    IFS=' ' read -r ch subj nlabels size || return 1
    ch="${ch%$'\r'}"
    label=()
    for ((i = 0; i < nlabels; i++)); do
        IFS=' ' read -r lname llen || return 1
        lval=""
        if [ "${llen:-0}" -gt 0 ]; then IFS= read -r -N "$llen" lval || return 1; fi
        label["$lname"]="$lval"
    done
    payload=""
    if [ "${size:-0}" -gt 0 ]; then IFS= read -r -N "$size" payload || return 1; fi
    return 0
}

# json_str TEXT: TEXT as a JSON string literal.
json_str() {
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}
