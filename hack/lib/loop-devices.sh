# shellcheck shell=bash
# Loop devices of the test bed (source it; it defines functions only).

# detach_loops_under DIR: detaches every loop device whose backing file is under DIR. A
# device still in use (mounted, or under another loop) is only marked to go with its last
# user (autoclear): callers unmount and call again.
detach_loops_under() {
  local loop file
  while read -r loop file; do
    [[ $file == "$1/"* ]] && { losetup --detach "$loop" 2>/dev/null || true; }
  done < <(losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null || true)
  return 0
}
