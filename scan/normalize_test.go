package scan

import "testing"

func TestNormalizeOSFamily(t *testing.T) {
	tests := map[string]string{
		"debian": "debian", "Ubuntu": "debian", "debian 12": "debian", "ubuntu 22.04": "debian",
		"redhat": "rhel", "centos": "rhel", "rocky": "rhel", "Rocky 9.3": "rhel", "alma": "rhel",
		"almalinux": "rhel", "amazon": "rhel", "Amazon Linux 2": "rhel", "oracle": "rhel",
		"Red Hat Enterprise Linux 9": "rhel", "fedora": "rhel",
		"suse": "suse", "sles": "suse", "opensuse.leap": "suse", "opensuse-tumbleweed": "suse",
		"SUSE Linux Enterprise Server 15": "suse",
		"alpine":                          "alpine", "Alpine 3.19": "alpine",
		"wolfi": "wolfi", "photon 4.0": "photon", "": "",
	}
	for in, want := range tests {
		if got := NormalizeOSFamily(in); got != want {
			t.Errorf("NormalizeOSFamily(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPickFixed(t *testing.T) {
	tests := []struct{ fixed, installed, want string }{
		{"", "1.0", ""},
		{"1.0.1", "1.0.0", "1.0.1"},
		{" 1.0.1 ", "1.0.0", "1.0.1"},
		// One fixed version per branch: the smallest upgrade above installed.
		{"11.0.14, 10.1.49, 9.0.112", "9.0.109", "9.0.112"},
		{"1.2.3, 1.3.1", "1.2.0", "1.2.3"},
		{"1.2.3, 1.3.1", "1.3.0", "1.3.1"},
		// None above installed: the highest listed.
		{"1.2.3, 1.3.1", "2.0", "1.3.1"},
		// Legacy ranges.
		{">=4.17.11", "4.17.4", "4.17.11"},
		{">= 3.1.0, >= 2.1.3, < 3.0.0", "1.9.0", "2.1.3"},
		{"<2.0", "1.0", ""},
		{"1.0 - 2.0", "0.5", ""},
		// Epochs and distro revisions.
		{"1:1.0.2k-19.el7", "1:1.0.2k-16.el7", "1:1.0.2k-19.el7"},
		{"2.0.5-1+deb10u1", "2.0.5-1", "2.0.5-1+deb10u1"},
		{"1.2.3", "", "1.2.3"},
	}
	for _, tt := range tests {
		if got := pickFixed(tt.fixed, tt.installed); got != tt.want {
			t.Errorf("pickFixed(%q, %q) = %q, want %q", tt.fixed, tt.installed, got, tt.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0.1", "1.0", 1},
		{"1.10", "1.9", 1},
		{"1.01", "1.1", 0},
		{"1:1.0", "2.0", 1}, // epoch wins
		{"0:1.0", "1.0", 0}, // epoch 0 is no epoch
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.1.1d-r0", "1.1.1c-r0", 1},
		{"1.0a", "1.0", 1},
		{"1.0", "1.0a", -1},
		{"1.0.2k-19.el7", "1.0.2k-16.el7", 1},
		{"3.0.11-1~deb12u2", "3.0.11-1~deb12u1", 1},
		{"2.0.5-1+deb10u1", "2.0.5-1", 1},
		{"1.2", "1.a", 1}, // a number is newer than letters
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}
