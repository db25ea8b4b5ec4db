// Package jails holds palisade's end-to-end jail tests: the real palisade
// binary protecting a real OpenSSH server inside network namespaces, with
// attacker and admin clients in namespaces of their own, once per firewall
// backend (nftables, iptables+ipset, ufw). The tests need root and the
// programs sshd, ssh, sshpass, ssh-keygen, useradd and the firewall tools;
// they skip with the reason when something is missing. See docs/e2e.md.
package jails
