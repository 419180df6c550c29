// apt's unattended security upgrades, which every Pi gets.

/** Unattended security upgrades, as Debian's unattended-upgrades package expects. */
export function renderAutoUpgrades(): string {
    return `// Managed by pi-cluster.
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
`;
}

export function renderUnattendedPolicy(): string {
    return `// Managed by pi-cluster: security updates only (Debian's default origins), never reboot on its own.
Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::Remove-Unused-Dependencies "true";
`;
}
