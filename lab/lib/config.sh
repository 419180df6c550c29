# shellcheck shell=bash
# lab/lib/config.sh, sourced by lab/lab: the stack config Pulumi.lab.yaml: each host as YAML,
# the topology a promotion left, the rewrite of the lab-owned keys (write_config), the lab's
# throwaway backup key, and the web and replica counts last written.

ensure_backup_key() {
  [[ -f ${BACKUP_AGE_KEY} ]] && return 0
  command -v age-keygen >/dev/null || fatal "age-keygen is missing: run lab/lab deps (it installs Debian's age)"
  install -d -m 0700 "$(dirname "${BACKUP_AGE_KEY}")"
  (umask 077 && age-keygen -o "${BACKUP_AGE_KEY}" 2>/dev/null)
  info "made the lab's throwaway backup key ${BACKUP_AGE_KEY}"
}

yaml_scalar() {
  local v=$1
  if [[ ${v} =~ ^[A-Za-z0-9_./@+=-][A-Za-z0-9\ _./@+=:-]*$ && ${v} != *': '* && ${v} != *: ]]; then
    printf '%s' "${v}"
  else
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    printf '"%s"' "${v}"
  fi
}

# One host as YAML: FIRST prefixes the name line ("    " or "    - "), REST the others.
host_yaml() {
  local name=$1 first=$2 rest=$3 d
  d=$(host_dir "${name}")
  [[ -f ${d}/hostkey.pub ]] || fatal "${name} does not exist; run lab/lab up (with --web or --replicas for more hosts)"
  printf '%sname: %s\n' "${first}" "$(yaml_scalar "${name}")"
  printf '%saddress: %s\n' "${rest}" "$(yaml_scalar "$(host_address "${name}")")"
  printf '%shostKey: %s\n' "${rest}" "$(yaml_scalar "$(cat "${d}/hostkey.pub")")"
}

# The database and the replicas the stack config names, the database first, one per line,
# when a promotion (`pi-cluster promote`) made a host other than pi-db the database; nothing
# otherwise. Read from Pulumi.lab.yaml in the layouts lab/lab and pulumi write.
promoted_topology() {
  [[ -f ${CONFIG_FILE} ]] || return 0
  awk '
    /^  pi-cluster:database:/ { sect = "db"; next }
    /^  pi-cluster:dbReplicas:/ { sect = "rep"; next }
    /^ ? ?[^ ]/ { sect = "" }
    sect != "" && match($0, /^ +(- )?name: */) {
      v = substr($0, RLENGTH + 1); gsub(/^"|"$/, "", v)
      if (sect == "db") db = v; else reps = reps " " v
    }
    END {
      if (db == "" || db == "pi-db") exit
      print db
      n = split(reps, a, " "); for (i = 1; i <= n; i++) print a[i]
    }' "${CONFIG_FILE}"
}

# Rewrite the lab-owned keys of Pulumi.lab.yaml for N web servers, keeping every other line
# (encryptionsalt, other config keys) as it was. After a promotion the database and
# dbReplicas keys are the stack's, and stay as they are: rewriting them would make pi-db the
# database again, and its replica step would seed the promoted database from it.
write_config() {
  local web=$1 replicas=${2:-0} block tmp i promoted owned
  promoted=$(promoted_topology | tr '\n' ' ')
  owned='sshUser|sshPrivateKeyPath|managementCidr|loadBalancer|webServers|database|dbReplicas'
  if [[ -n ${promoted} ]]; then
    # A promotion made another host the database: the stack's topology is the stack's.
    owned='sshUser|sshPrivateKeyPath|managementCidr|loadBalancer|webServers'
    local have
    have=$(($(wc -w <<<"${promoted}") - 1))
    ((have == replicas)) || warn "the stack was promoted (database ${promoted%% *}): its database and ${have} replica(s) are kept as the config names them, not ${replicas}; change them with pulumi config"
  fi
  block=$(
    printf '  pi-cluster:sshUser: pi\n'
    printf '  pi-cluster:sshPrivateKeyPath: %s\n' "$(yaml_scalar "${SSH_KEY}")"
    printf '  pi-cluster:managementCidr: %s\n' "$(yaml_scalar "${SUBNET}")"
    printf '  pi-cluster:loadBalancer:\n'
    host_yaml pi-lb '    ' '    '
    printf '  pi-cluster:webServers:\n'
    for ((i = 1; i <= web; i++)); do host_yaml "pi-web${i}" '    - ' '      '; done
    if [[ -z ${promoted} ]]; then
      printf '  pi-cluster:database:\n'
      host_yaml pi-db '    ' '    '
      if ((replicas > 0)); then
        printf '  pi-cluster:dbReplicas:\n'
        for ((i = 1; i <= replicas; i++)); do host_yaml "pi-db-read${i}" '    - ' '      '; done
      fi
    fi
    # Backups on, with the seed's policy, once; a test's later changes to it are kept.
    if ! grep -q '^  pi-cluster:backup:' "${CONFIG_FILE}" 2>/dev/null; then
      ensure_backup_key
      printf '  pi-cluster:backup:\n'
      printf '    agePublicKey: %s\n' "$(age-keygen -y "${BACKUP_AGE_KEY}")"
    fi
  )
  tmp=$(mktemp "${CONFIG_FILE}.XXXXXX")
  {
    [[ -f ${CONFIG_FILE} ]] && cat "${CONFIG_FILE}"
    true
  } | awk -v block="${block}" -v ownre="^  pi-cluster:(${owned}):" '
    function owned(l) { return l ~ ownre }
    function cont(l) { return l ~ /^   / || l ~ /^  - / || l ~ /^[ \t]*$/ }
    BEGIN { skipping = 0; done = 0; held = "" }
    {
      if (skipping) {
        if ($0 ~ /^[ \t]*$/) { held = held $0 "\n"; next }
        if (cont($0)) { held = ""; next }
        skipping = 0; printf "%s", held; held = ""
      }
      if (owned($0)) { skipping = 1; held = ""; next }
      print
      if ($0 ~ /^config:[ \t]*$/ && !done) { print block; done = 1 }
    }
    END {
      if (skipping) printf "%s", held
      if (!done) { print "config:"; print block }
    }' >"${tmp}"
  chmod 0644 "${tmp}"
  mv "${tmp}" "${CONFIG_FILE}"
  printf '%s\n' "${web}" >"${WEB_COUNT_FILE}"
  printf '%s\n' "${replicas}" >"${REPLICA_COUNT_FILE}"
  info "wrote ${CONFIG_FILE} (${web} web servers, ${replicas} replicas)"
}

saved_web_count() {
  if [[ -f ${WEB_COUNT_FILE} ]]; then cat "${WEB_COUNT_FILE}"; else printf '2'; fi
}

saved_replica_count() {
  if [[ -f ${REPLICA_COUNT_FILE} ]]; then cat "${REPLICA_COUNT_FILE}"; else printf '0'; fi
}
