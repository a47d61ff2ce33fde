# Sourced by benchmark scripts, from the repository root, where they define their scratch
# folder: WORK (a new temporary folder, removed on exit together with every background
# job the script started) and the helpers below.
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# secs T0 T1: the seconds between two `date +%s.%N` readings.
secs() { echo "$2 - $1" | bc -l; }

# wait_size FILE BYTES: waits until FILE holds at least BYTES.
wait_size() {
  while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt "$2" ]; do sleep 0.05; done
}
