# Sourced by every recipe script after its option defaults (ESPnet's utils/parse_options.sh idea, our own):
# "--name value" sets the shell variable "name", which must already exist; anything else is refused in one line.
while [ $# -gt 0 ]; do
  case "$1" in
    --*) name="${1#--}"; [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
         declare -p "$name" >/dev/null 2>&1 || { echo "$0: unknown option $1" >&2; exit 1; }
         printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value)" >&2; exit 1 ;;
  esac
done
