# Sourced by chat.sh and test.sh (from the checkout's root): makes or reuses the
# virtual environment .venv in the checkout and installs fastsockjs into it, editable,
# with the extras named by the caller. Nothing goes into the interpreter itself: a
# Debian or Ubuntu system Python refuses pip outside a venv (PEP 668).
#
#   PYTHON=/path/to/python3.11+  picks the interpreter that makes .venv (default python3).
#   After `fastsockjs_venv EXTRAS`, $VPY is the venv's python.

fastsockjs_venv() {
  local extras=${1:-} base=${PYTHON:-python3} venv=.venv
  if ! command -v "$base" >/dev/null 2>&1; then
    echo "fastsockjs: no '$base' on PATH; set PYTHON=/path/to/python3 (3.11 or newer)" >&2
    return 1
  fi
  if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "fastsockjs: needs Python 3.11 or newer; $base is $("$base" -V 2>&1)." \
      "Set PYTHON=/path/to/python3.11" >&2
    return 1
  fi
  local want have=""
  want=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ -x "$venv/bin/python" ]; then
    have=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
      2>/dev/null || true)
  fi
  if [ -e "$venv" ] && [ "$have" != "$want" ]; then
    # Broken (its interpreter moved away) or made by another Python version.
    echo "fastsockjs: remaking $venv (it has Python '${have:-none}', $base is $want)" >&2
    rm -rf "$venv"
  fi
  if [ ! -e "$venv" ]; then
    echo "fastsockjs: making $venv with $base ($want)" >&2
    if ! "$base" -m venv "$venv"; then
      rm -rf "$venv"
      echo "fastsockjs: '$base -m venv' failed. On Debian or Ubuntu install the" \
        "python3-venv package (apt-get install python3-venv, or bash scripts/setup-system.sh)" >&2
      return 1
    fi
  fi
  VPY=$PWD/$venv/bin/python
  # Reinstall only when the build inputs or the extras changed, or the required C
  # extension is gone (an editable install builds it in place).
  local stamp
  stamp=$(cat pyproject.toml setup.py fastsockjs/*.pyx | "$VPY" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')
  local ok=""
  if [ -f "$venv/.fastsockjs-installed" ]; then
    while read -r hash have_extras; do
      [ "$hash" = "$stamp" ] || continue
      ok=yes
      for e in ${extras//,/ }; do
        case ",$have_extras," in *",$e,"*) ;; *) ok="" ;; esac
      done
      [ -n "$ok" ] && break
    done <"$venv/.fastsockjs-installed"
  fi
  if [ -n "$ok" ] && [ "${FASTSOCKJS_BUILD_EXTENSION:-}" = required ] &&
     ! (cd / && "$VPY" -c 'import fastsockjs._frames') 2>/dev/null; then
    ok=""
  fi
  if [ -z "$ok" ] || ! "$VPY" -c 'import fastsockjs' 2>/dev/null; then
    local target=.
    [ -n "$extras" ] && target=".[$extras]"
    echo "fastsockjs: installing $target into $venv" >&2
    "$VPY" -m pip install -q --disable-pip-version-check -e "$target"
    echo "$stamp $extras" >>"$venv/.fastsockjs-installed"
  fi
}
