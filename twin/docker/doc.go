// Package docker provisions twins as Docker containers, driven with
// testcontainers-go: a twin is a container from the image TwinPolicy names
// for the target's OS, brought to the target's state, and then driven over
// SSH exactly as a fleet host is (fleet.Client, scripts on stdin to
// /bin/sh -s as root), so patch scripts run the way they will in
// production and timeouts kill the script's process group.
//
// Provisioning reads the target over SSH (twin.ReadHostState: its OS, its
// installed packages, its apt sources, pins and keyrings), starts a
// container with a freshly generated host key and client key (the host key
// is pinned, never ignored), and replicates the state (twin.Sync): the
// target's apt configuration, every package of the target at the target's
// version that the sources carry — so the vulnerable version is what the
// patch meets — and TwinPolicy's services, started with their SysV init
// scripts or their unit's ExecStart: no systemd runs in a twin, and tini
// (PID 1 in the image) reaps what they start. What could not be replicated
// is listed in the transcript.
//
// Containers are labelled (LabelManaged, LabelOwner …) and removed by this
// package: when a replica is closed, when provisioning fails, when the
// Engine closes, and — for containers of a process that crashed — by the
// sweep every NewEngine runs. testcontainers' reaper is not needed (its
// image cannot be pulled without a registry: disable it with
// TESTCONTAINERS_RYUK_DISABLED=true).
//
// Images are built locally without a registry by `make images`
// (scripts/build-twin-image.sh: a debootstrap rootfs imported with
// `docker import`); images/README.md says how to use stock images instead.
package docker
