#!/usr/bin/env bash
# Installs the Debian packages Dialtone needs, when missing and when we may (root on Debian/Ubuntu).
#
#   scripts/system-deps.sh serve   what serving the example flow needs (espeak-ng); elsewhere it
#                                  names what is missing and the command, and exits 1
#   scripts/system-deps.sh test    what the tests talk to (SIPp, baresip, Kamailio, ...); elsewhere
#                                  it names what is missing and exits 0: those tests skip with that
#                                  reason (in CI, with CI=true, they fail instead)
set -u
set_name=${1:-test}
if [ "$set_name" = serve ]; then
  declare -A TOOLS=([espeak-ng]=espeak-ng)
  declare -A FILES=()
else
# command -> Debian package
declare -A TOOLS=(
  [sipp]=sip-tester
  [baresip]=baresip
  [kamailio]=kamailio
  [mosquitto]=mosquitto
  [espeak-ng]=espeak-ng
  [sox]=sox
  [tshark]=tshark
  [chromium]=chromium
)
# files -> Debian packages (asterisk-core-sounds-XX makes the sounds/XX link to the -wav files)
declare -A FILES=(
  [/usr/share/asterisk/sounds/en/vm-intro.wav]="asterisk-core-sounds-en asterisk-core-sounds-en-wav"
  [/usr/share/asterisk/sounds/es/vm-intro.wav]="asterisk-core-sounds-es asterisk-core-sounds-es-wav"
  [/usr/share/asterisk/sounds/fr/vm-intro.wav]="asterisk-core-sounds-fr asterisk-core-sounds-fr-wav"
  [/usr/share/asterisk/sounds/it/vm-intro.wav]="asterisk-core-sounds-it asterisk-core-sounds-it-wav"
  [/usr/share/asterisk/sounds/ru/vm-intro.wav]="asterisk-core-sounds-ru asterisk-core-sounds-ru-wav"
  [/usr/share/asterisk/moh/macroform-cold_day.wav]=asterisk-moh-opsound-wav
  [/usr/include/*/spandsp.h]=libspandsp-dev
)
fi
missing=()
for t in "${!TOOLS[@]}"; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing+=("${TOOLS[$t]}")
done
for f in "${!FILES[@]}"; do
  # shellcheck disable=SC2206 # a value may name several packages
  compgen -G "$f" >/dev/null || missing+=(${FILES[$f]})
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    if [ "$set_name" = serve ]; then
      echo "system-deps: apt-get failed to install ${missing[*]}; serving needs them" >&2
      exit 1
    fi
    echo "system-deps: apt-get failed; tests needing ${missing[*]} will skip" >&2
    exit 0
  fi
  # Debian starts daemons on install; the tests start their own on free ports.
  for svc in kamailio; do
    command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
else
  echo "system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "system-deps: install them with: sudo apt-get install ${missing[*]}" >&2
  [ "$set_name" = serve ] && exit 1
fi
exit 0
