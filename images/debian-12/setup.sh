#!/bin/sh
# Runs inside the fresh debootstrap rootfs (chroot) before it is imported.
set -eu

# Every twin gets its own host key, injected when its container is created;
# a key baked into the image would be shared by every twin ever started.
rm -f /etc/ssh/ssh_host_*

# A twin installs from the target host's apt sources, written at provisioning
# time. The build mirror's lists would otherwise offer candidate versions the
# twin cannot download.
: >/etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get clean
rm -rf /var/lib/apt/lists/*

# No init system runs in a twin: maintainer scripts that try to (re)start a
# daemon through invoke-rc.d get "not now" instead of an error. The twin
# starts the target's services itself (see twin.StartServices).
cat >/usr/sbin/policy-rc.d <<'POLICY'
#!/bin/sh
exit 101
POLICY
chmod 0755 /usr/sbin/policy-rc.d

install -d -m 0700 /root/.ssh
