// Package harden groups palisade's hardening commands: sshd configuration
// (package sshd), service ports and the firewall openings they need (package
// ports), FTP daemons (package ftp) and the automatic rollback that keeps a
// risky change from locking the admin out (package rollback). Package fsx
// holds the small file helpers they share (root-prefixed paths, atomic
// writes, diffs, tree hashes for tests).
package harden
