# shellcheck shell=bash
# lab/lib/net.sh, sourced by lab/lab: the lab's network: the subnet and each host's address,
# the uplink and the machine's resolvers, the bridge with its nft table and NAT
# (ensure_network), and each host's network namespace and veth (ensure_netns).

subnet_prefix() {
  [[ ${SUBNET} =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.0/24$ ]] \
    || fatal "PI_LAB_SUBNET=${SUBNET}: expected a /24 such as 10.254.0.0/24"
  local p="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  [[ ${p} != 192.168.254 ]] || fatal "PI_LAB_SUBNET=${SUBNET}: 192.168.254.0/24 is reserved and must not be used"
  printf '%s' "${p}"
}

gateway() { printf '%s.1' "$(subnet_prefix)"; }

# The address of a host, from its name: lb .121, web1 .122, web2 .123, db .124, webN .122+N,
# db-readN .126+N (the seed's read replicas at .127 and .128).
host_address() {
  local name=$1 n
  case ${name} in
    pi-lb) n=121 ;;
    pi-db) n=124 ;;
    pi-db-read*) n=$((126 + ${name#pi-db-read})) ;;
    pi-web1) n=122 ;;
    pi-web2) n=123 ;;
    pi-web*) n=$((122 + ${name#pi-web})) ;;
    *) fatal "unknown host name '${name}'" ;;
  esac
  ((n <= 254)) || fatal "host ${name}: no address left in ${SUBNET}"
  printf '%s.%s' "$(subnet_prefix)" "${n}"
}

veth_name() { printf 'pl-%s' "$1"; }

# Network namespaces that look like the lab's (by name), whether or not state knows them.
lab_netns() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "${HOST_RE}" || true
}

uplink_dev() {
  local dev
  dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')
  [[ -n ${dev} ]] || fatal "no IPv4 default route: the lab needs an uplink for NAT to the package registries"
  printf '%s' "${dev}"
}

uplink_mtu() { cat "/sys/class/net/$(uplink_dev)/mtu"; }

# IPv4 resolvers of the machine; lab hosts may send DNS to these and nowhere else.
resolvers() {
  awk '$1 == "nameserver" && $2 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ && $2 !~ /^127\./ {print $2}' /etc/resolv.conf
}

# ---------------------------------------------------------------------------- network

ensure_network() {
  local mtu gw dev prefix resolver_list
  mtu=$(uplink_mtu)
  gw=$(gateway)
  dev=$(uplink_dev)
  prefix=$(subnet_prefix)
  resolver_list=$(resolvers | paste -sd, -)
  [[ -n ${resolver_list} ]] \
    || fatal "no non-loopback IPv4 nameserver in /etc/resolv.conf: lab hosts could not resolve names"

  if ! ip link show "${BRIDGE}" >/dev/null 2>&1; then
    ip link add "${BRIDGE}" type bridge
  fi
  ip link set "${BRIDGE}" mtu "${mtu}"
  ip addr replace "${gw}/24" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up

  if [[ ! -f ${FORWARD_SAVE} ]]; then
    cat /proc/sys/net/ipv4/ip_forward >"${FORWARD_SAVE}"
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward

  # Lab hosts may reach: each other, the machine's resolvers for DNS, and tcp 80/443 out of
  # the uplink (package registries). Nothing else: no private ranges, no other ports.
  nft -f - <<EOF || fatal "loading nft table inet ${NFT_TABLE} failed"
table inet ${NFT_TABLE}
delete table inet ${NFT_TABLE}
table inet ${NFT_TABLE} {
  chain forward {
    type filter hook forward priority filter; policy accept;
    oifname "${BRIDGE}" ct state established,related accept
    oifname "${BRIDGE}" iifname != "${BRIDGE}" counter drop
    iifname "${BRIDGE}" ct state established,related accept
    iifname "${BRIDGE}" oifname "${BRIDGE}" accept
    iifname "${BRIDGE}" ip daddr { ${resolver_list} } udp dport 53 accept
    iifname "${BRIDGE}" ip daddr { ${resolver_list} } tcp dport 53 accept
    iifname "${BRIDGE}" ip daddr ${prefix}.0/24 accept
    iifname "${BRIDGE}" ip daddr { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/3 } counter drop
    iifname "${BRIDGE}" oifname "${dev}" ip daddr != ${prefix}.0/24 tcp dport { 80, 443 } accept
    iifname "${BRIDGE}" counter drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "${BRIDGE}" ct state established,related accept
    iifname "${BRIDGE}" counter drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${prefix}.0/24 oifname "${dev}" masquerade
  }
}
EOF
}

host_mac() {
  local -a o
  IFS=. read -r -a o <<<"$1"
  printf '02:70:69:%02x:%02x:%02x' "${o[1]}" "${o[2]}" "${o[3]}"
}

# Network namespace NAME with host0 (a veth into the bridge), the host's address and a
# default route via the bridge.
ensure_netns() {
  local name=$1 addr veth mtu
  addr=$(host_address "${name}")
  veth=$(veth_name "${name}")
  mtu=$(uplink_mtu)
  [[ -e /run/netns/${name} ]] || ip netns add "${name}"
  if ! ip -n "${name}" link show host0 >/dev/null 2>&1; then
    ip link del "${veth}" 2>/dev/null || true
    ip link add "${veth}" mtu "${mtu}" type veth peer name host0 netns "${name}" mtu "${mtu}"
  fi
  ip link set "${veth}" mtu "${mtu}" master "${BRIDGE}" up
  ip -n "${name}" link set lo up
  # A fixed MAC per address, like a Pi's board: after a reset the machine's ARP entry for the
  # host is still right (a new random MAC left it unreachable for up to 45 s).
  ip -n "${name}" link set host0 address "$(host_mac "${addr}")"
  ip -n "${name}" link set host0 mtu "${mtu}" up
  ip -n "${name}" addr replace "${addr}/24" dev host0
  ip -n "${name}" route replace default via "$(gateway)" dev host0
}
