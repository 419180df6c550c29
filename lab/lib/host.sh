# shellcheck shell=bash
# lab/lib/host.sh, sourced by lab/lab: one simulated Pi's life: its name and state dir, its
# processes and power (is_running, power_cut), its overlay disk and keys, booting it and
# waiting for its sshd, creating and destroying it, and the leftovers of a killed run.
# shellcheck disable=SC2153 # BASE is lab/lab's (readonly), not a misspelling of a local base

check_host_name() {
  [[ $1 =~ ${HOST_RE} ]] || fatal "'$1' is not a lab host name (pi-lb, pi-db, pi-webN, pi-db-readN)"
}

host_dir() { printf '%s/%s' "${HOSTS_DIR}" "$1"; }

desired_hosts() {
  local web=$1 replicas=${2:-0} i
  printf '%s\n' pi-lb
  for ((i = 1; i <= web; i++)); do printf 'pi-web%s\n' "${i}"; done
  printf '%s\n' pi-db
  for ((i = 1; i <= replicas; i++)); do printf 'pi-db-read%s\n' "${i}"; done
}

# Hosts that exist on disk (created), sorted by address.
existing_hosts() {
  local d name
  [[ -d ${HOSTS_DIR} ]] || return 0
  for d in "${HOSTS_DIR}"/*/; do
    [[ -d ${d} ]] || continue
    name=$(basename "${d}")
    [[ ${name} =~ ${HOST_RE} ]] || continue
    printf '%s %s\n' "$(host_address "${name}" | awk -F. '{print $4}')" "${name}"
  done | sort -n | awk '{print $2}'
}

# ---------------------------------------------------------------------------- processes

# The systemd-nspawn process running host NAME, if any (found by its command line, so a
# stale pid file never points at a stranger).
nspawn_pid() {
  local name=$1 p comm
  for p in /proc/[0-9]*; do
    # Builtin read, no fork per process: this runs in every wait loop.
    read -r comm 2>/dev/null <"${p}/comm" || continue
    [[ ${comm} == systemd-nspawn ]] || continue
    if tr '\0' '\n' <"${p}/cmdline" 2>/dev/null | grep -qxF -e "--machine=${name}"; then
      printf '%s\n' "${p#/proc/}"
      return 0
    fi
  done
  return 0
}

# Every process inside host NAME's network namespace.
netns_pids() {
  [[ -e /run/netns/$1 ]] || return 0
  ip netns pids "$1" 2>/dev/null || true
}

is_running() {
  [[ -n $(nspawn_pid "$1") ]]
}

# A process that still runs: a zombie is dead already, only its reaping (by the machine's
# init, which adopted it) is left.
alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# Cut the power: SIGKILL the container's init (the kernel then kills everything in its PID
# namespace), then nspawn, which has nothing left to run. No clean shutdown, no sync inside.
power_cut() {
  local name=$1 p pid i left
  local -a killed=()
  # Unplugged: no link, so the machine gets no answer at all (not even a refusal).
  ip link set "$(veth_name "${name}")" down 2>/dev/null || true
  for p in $(netns_pids "${name}"); do
    if awk '$1 == "NSpid:" && NF > 2 && $NF == 1 {found = 1} END {exit !found}' "/proc/${p}/status" 2>/dev/null; then
      kill -KILL "${p}" 2>/dev/null || true
      killed+=("${p}")
    fi
  done
  for p in $(netns_pids "${name}"); do
    kill -KILL "${p}" 2>/dev/null || true
    killed+=("${p}")
  done
  pid=$(nspawn_pid "${name}")
  [[ -z ${pid} ]] || killed+=("${pid}")
  for ((i = 0; i < 50; i++)); do
    [[ -n ${pid} && -d /proc/${pid} ]] || break
    sleep 0.1
  done
  if [[ -n ${pid} && -d /proc/${pid} ]]; then
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  # Dying processes leave their netns before they are gone: wait for the pids themselves.
  for ((i = 0; i < 100; i++)); do
    left=""
    for p in "${killed[@]}"; do alive "${p}" && left+=" ${p}"; done
    [[ -z ${left} && -z $(nspawn_pid "${name}") && -z $(netns_pids "${name}") ]] && break
    sleep 0.1
  done
  [[ -z $(nspawn_pid "${name}") ]] || fatal "${name}: systemd-nspawn survived SIGKILL"
  [[ -z ${left} ]] || warn "${name}: processes${left} are still exiting after SIGKILL"
  rm -f "$(host_dir "${name}")/nspawn.pid"
}

# ---------------------------------------------------------------------------- hosts

ensure_mount() {
  local name=$1 d
  d=$(host_dir "${name}")
  mkdir -p "${d}/upper" "${d}/work" "${d}/root"
  mountpoint -q "${d}/root" && return 0
  mount -t overlay overlay -o "lowerdir=${BASE},upperdir=${d}/upper,workdir=${d}/work" "${d}/root" \
    || fatal "${name}: overlay mount on ${d}/root failed"
}

unmount_host() {
  local d
  d=$(host_dir "$1")
  if mountpoint -q "${d}/root" 2>/dev/null; then
    umount "${d}/root" || umount -l "${d}/root" || fatal "$1: cannot unmount ${d}/root"
  fi
}

# A fresh disk for NAME: its hostname, machine-id, lab SSH key and a new ssh host key.
provision_disk() {
  local name=$1 d root uid gid
  d=$(host_dir "${name}")
  root="${d}/root"
  printf '%s\n' "${name}" >"${root}/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
    "${name}" >"${root}/etc/hosts"
  tr -d '-' </proc/sys/kernel/random/uuid >"${root}/etc/machine-id"
  uid=$(pi_uid "${root}")
  gid=$(pi_gid "${root}")
  install -d -m 0700 -o "${uid}" -g "${gid}" "${root}/home/pi/.ssh"
  install -m 0600 -o "${uid}" -g "${gid}" "${SSH_KEY}.pub" "${root}/home/pi/.ssh/authorized_keys"
  rm -f "${root}"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "root@${name}" -f "${root}/etc/ssh/ssh_host_ed25519_key"
  awk '{print $1, $2}' "${root}/etc/ssh/ssh_host_ed25519_key.pub" >"${d}/hostkey.pub"
  printf '%s %s\n' "$(host_address "${name}")" "$(cat "${d}/hostkey.pub")" >"${d}/known_hosts"
}

ensure_ssh_key() {
  [[ -f ${SSH_KEY} ]] && return 0
  install -d -m 0700 "$(dirname "${SSH_KEY}")"
  ssh-keygen -q -t ed25519 -N '' -C pi-cluster-lab -f "${SSH_KEY}"
  chmod 0600 "${SSH_KEY}"
}

boot_host() {
  local name=$1 d pid
  d=$(host_dir "${name}")
  is_running "${name}" && return 0
  # A container whose nspawn was killed alone lives on, orphaned: finish it off first.
  [[ -z $(netns_pids "${name}") ]] || power_cut "${name}"
  ensure_mount "${name}"
  ensure_netns "${name}"
  write_resolv_conf "${d}/root"
  # setsid: the container outlives this shell and its terminal; no job control here, so
  # setsid execs in place and $! is nspawn itself.
  # Unified cgroup hierarchy inside: trixie's systemd 257 no longer copes with the legacy
  # hierarchies of a hybrid host (user managers fail to attach to their cgroups).
  # CAP_NET_ADMIN: a Pi runs its own nftables firewall; nspawn drops the capability by
  # default, and here it only reaches the host's own network namespace.
  # Its own cgroup: with --keep-unit nspawn puts the container's tree ("payload") under the
  # caller's cgroup, so containers started from one shell shared one tree, and a unit on one
  # Pi saw another Pi's processes as its own (a killed service then never finished stopping).
  # The subshell moves itself, then becomes nspawn (exec, and setsid execs in place), so $!
  # is still nspawn's PID.
  (
    own_cgroup "${name}"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec setsid systemd-nspawn -D "${d}/root" --boot --register=no --keep-unit --machine="${name}" \
      --network-namespace-path="/run/netns/${name}" --capability=CAP_NET_ADMIN --resolv-conf=off --timezone=off \
      --link-journal=no --console=read-only
  ) </dev/null >>"${d}/nspawn.log" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "${pid}" >"${d}/nspawn.pid"
  # Until the subshell has become nspawn, the host does not look running (nspawn_pid).
  local i comm=""
  for ((i = 0; i < 100; i++)); do
    read -r comm 2>/dev/null <"/proc/${pid}/comm" || break
    [[ ${comm} == systemd-nspawn ]] && break
    sleep 0.05
  done
}

# own_cgroup NAME : moves the calling (sub)shell into pilab/NAME in every cgroup hierarchy it can
# write (the unified one and systemd's named one on a hybrid host; the one tree on a pure
# cgroup v2 host), so the container started from it gets a tree of its own.
own_cgroup() {
  local name=$1 base dir
  for base in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
    [[ -f ${base}/cgroup.procs ]] || continue
    dir="${base}/pilab/${name}"
    mkdir -p "${dir}" 2>/dev/null || continue
    printf '%s\n' "${BASHPID}" >"${dir}/cgroup.procs" 2>/dev/null || warn "cannot move into ${dir}"
  done
}

# Wait until sshd on NAME answers with the host key we generated for it.
wait_ssh() {
  local name=$1 d addr deadline err=""
  d=$(host_dir "${name}")
  addr=$(host_address "${name}")
  deadline=$((SECONDS + BOOT_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! is_running "${name}"; then
      fatal "${name}: the container exited while booting; end of ${d}/nspawn.log: $(tail -n 5 "${d}/nspawn.log" | tr '\n' ' ')"
    fi
    if err=$(ssh_probe "${name}" "${addr}" 2>&1); then
      return 0
    fi
    sleep 0.5
  done
  fatal "${name}: sshd at ${addr} did not answer with the expected host key within ${BOOT_TIMEOUT} s (last error: ${err:-none}); see ${d}/nspawn.log"
}

# One login as pi, pinned to NAME's host key; bounded, so a probe that connects but then
# stalls is retried rather than waited on.
ssh_probe() {
  local name=$1 addr=$2
  timeout 10 ssh -o BatchMode=yes -o IdentitiesOnly=yes -i "${SSH_KEY}" \
    -o UserKnownHostsFile="$(host_dir "${name}")/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o HostKeyAlgorithms=ssh-ed25519 -o LogLevel=ERROR \
    -o ConnectTimeout=2 "pi@${addr}" true
}

create_host() {
  local name=$1 d
  d=$(host_dir "${name}")
  info "creating ${name} ($(host_address "${name}"))"
  rm -rf "${d}"
  mkdir -p "${d}"
  ensure_mount "${name}"
  provision_disk "${name}"
  boot_host "${name}"
}

# Remove a host entirely: power, mount, namespace (its veth goes with it), disk.
destroy_host() {
  local name=$1
  power_cut "${name}"
  unmount_host "${name}"
  # Its cgroup trees (see own_cgroup), emptied by the power cut; deepest first.
  find /sys/fs/cgroup/unified/pilab/"${name}" /sys/fs/cgroup/systemd/pilab/"${name}" /sys/fs/cgroup/pilab/"${name}" \
    -depth -type d -exec rmdir {} + 2>/dev/null || true
  [[ -e /run/netns/${name} ]] && ip netns del "${name}"
  ip link del "$(veth_name "${name}")" 2>/dev/null || true
  ip neigh flush to "$(host_address "${name}")" dev "${BRIDGE}" 2>/dev/null || true
  rm -rf "$(host_dir "${name}")"
}

# Leftovers of a killed run whose processes are gone: half-made hosts, namespaces or veths
# with no host, stray mounts. Complete hosts that are merely stopped are kept (and started).
cleanup_stale() {
  local name d line mnt
  for name in $(lab_netns); do
    d=$(host_dir "${name}")
    if [[ ! -f ${d}/created ]] && ! is_running "${name}" && [[ -z $(netns_pids "${name}") ]]; then
      info "removing stale namespace ${name}"
      ip netns del "${name}"
    fi
  done
  if [[ -d ${HOSTS_DIR} ]]; then
    for d in "${HOSTS_DIR}"/*/; do
      [[ -d ${d} ]] || continue
      name=$(basename "${d}")
      if [[ ! -f ${d}/created ]] && ! is_running "${name}"; then
        info "removing half-made host ${name}"
        destroy_host "${name}"
      fi
    done
  fi
  # Mounts under the hosts dir whose host is gone.
  while read -r mnt; do
    name=$(basename "$(dirname "${mnt}")")
    [[ -f ${HOSTS_DIR}/${name}/created ]] && continue
    info "unmounting stale ${mnt}"
    umount -l "${mnt}" || true
  done < <(lab_mounts)
  for line in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^pl-pi-' || true); do
    name=${line#pl-}
    [[ -e /run/netns/${name} ]] && continue
    info "removing stale veth ${line}"
    ip link del "${line}" 2>/dev/null || true
  done
}

lab_mounts() {
  awk -v pfx="${HOSTS_DIR}/" '
    function unescape(s) { gsub(/\\040/, " ", s); return s }
    { m = unescape($5); if (index(m, pfx) == 1) print m }' /proc/self/mountinfo | sort -r
}
