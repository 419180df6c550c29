# shellcheck shell=bash
# lab/lib/image.sh, sourced by lab/lab: the host packages the lab needs (ensure_deps) and the
# cached Debian base image under every Pi's overlay: the machine's apt mirrors, debootstrap,
# and what configure_image sets up in it (user pi, sshd, resolv.conf).

# ---------------------------------------------------------------------------- host packages

ensure_deps() {
  local -a missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  { command -v ssh && command -v ssh-keygen; } >/dev/null || missing+=(openssh-client)
  command -v age-keygen >/dev/null || missing+=(age)
  { command -v flock && command -v setsid && command -v mountpoint; } >/dev/null || missing+=(util-linux)
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  ((${#missing[@]})) || return 0
  info "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || fatal "apt-get update failed; check the machine's apt sources"
  apt-get install -y -q "${missing[@]}" >/dev/null || fatal "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------- base image

# Prints "URI SUITE" for every enabled deb source of the machine (deb822 and one-line).
apt_source_pairs() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f ${f} ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
        types = ""; enabled = ""; nu = 0; ns = 0; field = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        val = $0
        if ($0 ~ /^[^ \t]/) {
          field = tolower($0); sub(/:.*/, "", field)
          sub(/^[^:]*:/, "", val)
        }
        n = split(val, a, /[ \t]+/)
        for (k = 1; k <= n; k++) {
          if (a[k] == "") continue
          if (field == "types") types = types " " a[k]
          else if (field == "enabled") enabled = tolower(a[k])
          else if (field == "uris") u[++nu] = a[k]
          else if (field == "suites") s[++ns] = a[k]
        }
      }
      END { flush() }' "${f}"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f ${f} ]] || continue
    awk '$1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if (i + 1 <= NF) print $i, $(i + 1)
    }' "${f}"
  done
}

# The machine's Debian mirror and security mirror ("" when it has none configured).
machine_mirror() {
  local codename
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [[ -n ${codename} ]] || return 0
  apt_source_pairs | awk -v s="${codename}" '$2 == s {print $1; exit}'
}

machine_security_mirror() {
  local codename
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [[ -n ${codename} ]] || return 0
  apt_source_pairs | awk -v s="${codename}-security" '$2 == s || $2 == s "/updates" {print $1; exit}'
}

write_resolv_conf() {
  local root=$1
  rm -f "${root}/etc/resolv.conf"
  {
    printf '# written by lab/lab from the machine'"'"'s resolvers\n'
    grep -E '^(nameserver|search|options)[[:space:]]' /etc/resolv.conf | grep -Ev '^nameserver[[:space:]]+(127\.|::1)' || true
  } >"${root}/etc/resolv.conf"
}

configure_image() {
  local root=$1 mirror=$2 security=$3
  # No service may start inside the chroot while we configure it.
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 0755 "${root}/usr/sbin/policy-rc.d"
  write_resolv_conf "${root}"

  rm -f "${root}/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "${mirror}" "${SUITE}" "${SUITE}"
    if [[ -n ${security} ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "${security}" "${SUITE}"
    fi
  } >"${root}/etc/apt/sources.list.d/debian.sources"

  export DEBIAN_FRONTEND=noninteractive
  chroot "${root}" apt-get update -q >/dev/null || fatal "apt-get update in the new image failed"
  chroot "${root}" apt-get full-upgrade -y -q >/dev/null || fatal "apt-get full-upgrade in the new image failed"
  chroot "${root}" apt-get clean

  # User pi with passwordless sudo, as Raspberry Pi OS sets it up; no password at all.
  chroot "${root}" useradd -m -s /bin/bash -G adm,dialout,cdrom,sudo,audio,video,plugdev,users pi
  chroot "${root}" passwd -l pi >/dev/null
  printf 'pi ALL=(ALL) NOPASSWD: ALL\n' >"${root}/etc/sudoers.d/010_pi-nopasswd"
  chmod 0440 "${root}/etc/sudoers.d/010_pi-nopasswd"
  install -d -m 0700 -o "$(pi_uid "${root}")" -g "$(pi_gid "${root}")" "${root}/home/pi/.ssh"

  # sshd: keys only, one ed25519 host key that each host generates for itself.
  cat >"${root}/etc/ssh/sshd_config.d/50-pi-lab.conf" <<'EOF'
# lab/lab: key-only logins; one per-host ed25519 host key, made when the host is created.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
EOF
  rm -f "${root}"/etc/ssh/ssh_host_*
  # sshd answers only once logind is up: a login that races it waits 25 s on D-Bus.
  mkdir -p "${root}/etc/systemd/system/ssh.service.d"
  printf '[Unit]\nAfter=dbus.service systemd-logind.service\n' \
    >"${root}/etc/systemd/system/ssh.service.d/10-after-logind.conf"

  printf 'raspberrypi\n' >"${root}/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
    >"${root}/etc/hosts"
  printf 'LANG=C.UTF-8\n' >"${root}/etc/default/locale"
  # pi's user manager runs from boot and never stops: in a container on this kind of host
  # (hybrid cgroups) stopping user@1000.service after the last logout hangs for 2 minutes,
  # blocking the next login and leaving the system degraded.
  mkdir -p "${root}/var/lib/systemd/linger"
  : >"${root}/var/lib/systemd/linger/pi"
  # Each host gets its own machine-id when it is created.
  : >"${root}/etc/machine-id"
  rm -f "${root}/var/lib/dbus/machine-id"

  local unit
  for unit in ${MASKED_UNITS}; do
    ln -sf /dev/null "${root}/etc/systemd/system/${unit}"
  done
  rm -f "${root}/usr/sbin/policy-rc.d"
}

pi_uid() { awk -F: '$1 == "pi" {print $3}' "$1/etc/passwd"; }
pi_gid() { awk -F: '$1 == "pi" {print $4}' "$1/etc/passwd"; }

build_image() {
  local rebuild=${1:-}
  if [[ -f ${BASE}/.lab-image && -z ${rebuild} ]]; then
    # The image records the package list it was built with: another list rebuilds it, once no
    # host uses it any more.
    if grep -qxF "packages=${BASE_PACKAGES}" "${BASE}/.lab-image"; then
      return 0
    fi
    if [[ -n $(existing_hosts) ]]; then
      warn "the base image was built with other packages than ${BASE_PACKAGES}; lab/lab down, then up, rebuilds it"
      return 0
    fi
    info "the base image was built with other packages: rebuilding it"
  fi
  if [[ -n ${rebuild} && -n $(existing_hosts) ]]; then
    fatal "hosts still use the base image; run lab/lab down first"
  fi
  mkdir -p "${CACHE}"
  local tmp mirror security start
  start=${SECONDS}
  tmp=$(mktemp -d "${CACHE}/.build-${SUITE}.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '${tmp}'" EXIT
  mirror=$(machine_mirror)
  security=$(machine_security_mirror)
  info "building the ${SUITE} base image (once; cached in ${BASE})"
  # With no mirror configured on the machine, debootstrap uses its own default.
  local -a args=(--variant=minbase --components=main --include="${BASE_PACKAGES}" "${SUITE}" "${tmp}/root")
  [[ -n ${mirror} ]] && args+=("${mirror}")
  debootstrap "${args[@]}" >"${tmp}/debootstrap.log" 2>&1 \
    || fatal "debootstrap failed; see the end of its log: $(tail -n 5 "${tmp}/debootstrap.log" | tr '\n' ' ')"
  if [[ -z ${mirror} ]]; then
    mirror=$(awk '$1 == "deb" {print $2; exit}' "${tmp}/root/etc/apt/sources.list")
  fi
  if [[ -z ${security} && ${mirror} == */debian ]]; then
    security="${mirror}-security"
  fi
  [[ -n ${security} ]] || warn "no security mirror found in the machine's apt config; images get no ${SUITE}-security"
  configure_image "${tmp}/root" "${mirror}" "${security}"
  printf '%s\npackages=%s\n' "$(date -u +%FT%TZ)" "${BASE_PACKAGES}" >"${tmp}/root/.lab-image"
  rm -rf "${BASE}.old"
  [[ -e ${BASE} ]] && mv "${BASE}" "${BASE}.old"
  mv "${tmp}/root" "${BASE}"
  rm -rf "${BASE}.old" "${tmp}"
  trap - EXIT
  info "base image ready in $((SECONDS - start)) s ($(du -sh "${BASE}" | cut -f1))"
}
