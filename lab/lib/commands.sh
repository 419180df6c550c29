# shellcheck shell=bash
# lab/lib/commands.sh, sourced by lab/lab: one cmd_* function per subcommand that main
# dispatches to, with the argument checks they share (parse_counts, need_host).
# shellcheck disable=SC2153 # STATE is lab/lab's (readonly), not a misspelling of a local state

# parse_counts ARGS... : prints "WEB REPLICAS" from --web N (default 2) and --replicas R
# (default the last count given, at first 0).
parse_counts() {
  local web=2 replicas
  replicas=$(saved_replica_count)
  while (($#)); do
    case $1 in
      --web) [[ $# -ge 2 ]] || fatal "--web needs a number"; web=$2; shift 2 ;;
      --web=*) web=${1#--web=}; shift ;;
      --replicas) [[ $# -ge 2 ]] || fatal "--replicas needs a number"; replicas=$2; shift 2 ;;
      --replicas=*) replicas=${1#--replicas=}; shift ;;
      *) fatal "unknown argument '$1' (see lab/lab help)" ;;
    esac
  done
  if ! [[ ${web} =~ ^[0-9]+$ ]] || ((web < 1 || web > 100)); then fatal "--web ${web}: expected a number from 1 to 100"; fi
  if ! [[ ${replicas} =~ ^[0-9]+$ ]] || ((replicas > 20)); then fatal "--replicas ${replicas}: expected a number from 0 to 20"; fi
  # pi-web5 would take .127, the first replica's address.
  if ((replicas > 0 && web > 4)); then fatal "--web ${web} with --replicas ${replicas}: expected at most 4 web servers with replicas (pi-web5 would take pi-db-read1's .127)"; fi
  printf '%s %s' "${web}" "${replicas}"
}

cmd_up() {
  local web replicas counts name start
  counts=$(parse_counts "$@") || exit 1
  read -r web replicas <<<"${counts}"
  start=${SECONDS}
  ensure_deps
  take_lock
  build_image
  ensure_ssh_key
  cleanup_stale
  ensure_network
  local -a booted=()
  for name in $( { desired_hosts "${web}" "${replicas}"; promoted_topology; } | awk '!seen[$0]++'); do
    if [[ ! -f $(host_dir "${name}")/created ]]; then
      create_host "${name}"
      booted+=("${name}")
    elif ! is_running "${name}"; then
      info "starting ${name}"
      boot_host "${name}"
      booted+=("${name}")
    fi
  done
  for name in "${booted[@]}"; do
    wait_ssh "${name}"
    touch "$(host_dir "${name}")/created"
  done
  for name in $(existing_hosts); do
    { desired_hosts "${web}" "${replicas}"; promoted_topology; } | grep -qxF "${name}" || warn "${name} exists but is not in the config of ${web} web servers and ${replicas} replicas (lab/lab remove ${name} to delete it)"
  done
  write_config "${web}" "${replicas}"
  info "up: $(desired_hosts "${web}" "${replicas}" | wc -l) hosts ready (${#booted[@]} booted) in $((SECONDS - start)) s"
}

cmd_down() {
  local purge="" name mnt start
  start=${SECONDS}
  case ${1:-} in
    "") ;;
    --purge) purge=1 ;;
    *) fatal "unknown argument '$1' (see lab/lab help)" ;;
  esac
  take_lock
  for name in $( { existing_hosts; lab_netns; } | sort -u); do
    power_cut "${name}"
  done
  while read -r mnt; do
    umount "${mnt}" 2>/dev/null || umount -l "${mnt}"
  done < <(lab_mounts)
  for name in $(lab_netns); do ip netns del "${name}"; done
  for name in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^pl-pi-' || true); do
    ip link del "${name}" 2>/dev/null || true
  done
  ip link del "${BRIDGE}" 2>/dev/null || true
  nft delete table inet "${NFT_TABLE}" 2>/dev/null || true
  if [[ -f ${FORWARD_SAVE} ]]; then
    cat "${FORWARD_SAVE}" >/proc/sys/net/ipv4/ip_forward
    rm -f "${FORWARD_SAVE}"
  fi
  rm -rf "${HOSTS_DIR}" "${WEB_COUNT_FILE}" "${REPLICA_COUNT_FILE}"
  if [[ -n ${purge} ]]; then
    exec 9>&-
    rm -rf "${STATE}"
  fi
  info "down in $((SECONDS - start)) s (base image kept in ${BASE}${purge:+; state dir purged})"
}

cmd_status() {
  local name state any=""
  for name in $(existing_hosts); do
    any=1
    if is_running "${name}"; then state=running; else state=stopped; fi
    printf '%-12s %-15s %s\n' "${name}" "$(host_address "${name}")" "${state}"
  done
  [[ -n ${any} ]] || info "no hosts (lab/lab up creates them)"
}

need_host() {
  [[ $# -eq 1 ]] || fatal "expected exactly one HOST (see lab/lab help)"
  check_host_name "$1"
  [[ -f $(host_dir "$1")/created ]] || fatal "$1 does not exist (lab/lab status lists the hosts)"
}

cmd_stop() {
  need_host "$@"
  take_lock
  if ! is_running "$1"; then
    info "$1 is already stopped"
    return 0
  fi
  power_cut "$1"
  info "$1: power cut"
}

cmd_start() {
  need_host "$@"
  take_lock
  if is_running "$1"; then
    info "$1 is already running"
    return 0
  fi
  ensure_network
  boot_host "$1"
  wait_ssh "$1"
  info "$1 is up"
}

cmd_reset() {
  need_host "$@"
  take_lock
  local name=$1
  destroy_host "${name}"
  ensure_network
  create_host "${name}"
  wait_ssh "${name}"
  touch "$(host_dir "${name}")/created"
  write_config "$(saved_web_count)" "$(saved_replica_count)"
  info "${name} reset to bare"
}

cmd_remove() {
  need_host "$@"
  take_lock
  destroy_host "$1"
  info "$1 removed"
}

cmd_ssh() {
  [[ $# -ge 1 ]] || fatal "usage: lab/lab ssh HOST [CMD...]"
  local name=$1
  shift
  check_host_name "${name}"
  [[ -f $(host_dir "${name}")/known_hosts ]] || fatal "${name} does not exist (lab/lab status lists the hosts)"
  local -a tty=()
  [[ $# -eq 0 && -t 0 ]] && tty=(-t)
  exec ssh -o BatchMode=yes -o IdentitiesOnly=yes -i "${SSH_KEY}" \
    -o UserKnownHostsFile="$(host_dir "${name}")/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o HostKeyAlgorithms=ssh-ed25519 -o LogLevel=ERROR \
    "${tty[@]}" "pi@$(host_address "${name}")" "$@"
}

cmd_replica() {
  [[ $# -eq 2 ]] || fatal "usage: lab/lab replica HOST healthy|stopped|lagging"
  local name=$1 state=$2 sql
  [[ ${name} == pi-db-read* ]] || fatal "'${name}' is not a replica (pi-db-readN)"
  need_host "${name}"
  case ${state} in
    stopped) sql="STOP SLAVE" ;;
    lagging) sql="STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE" ;;
    healthy) sql="STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE" ;;
    *) fatal "replica state '${state}': expected healthy, stopped or lagging" ;;
  esac
  "$0" ssh "${name}" "sudo mariadb -e '${sql}'"
  if [[ ${state} == lagging ]]; then
    # One event for the delay to hold back; a lab-only schema, never the app's.
    "$0" ssh pi-db "sudo mariadb -e 'CREATE DATABASE IF NOT EXISTS pi_lab; CREATE TABLE IF NOT EXISTS pi_lab.heartbeat (id INT PRIMARY KEY, at TIMESTAMP(6)); REPLACE INTO pi_lab.heartbeat VALUES (1, NOW(6))'"
  fi
  info "${name}: ${state}"
}

cmd_config() {
  local web replicas counts
  counts=$(parse_counts "$@") || exit 1
  read -r web replicas <<<"${counts}"
  take_lock
  write_config "${web}" "${replicas}"
}

cmd_image() {
  case ${1:-} in
    "") ;;
    --rebuild) ;;
    *) fatal "unknown argument '$1' (see lab/lab help)" ;;
  esac
  ensure_deps
  take_lock
  build_image "${1:-}"
}
