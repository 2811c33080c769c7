package twin

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseHostState(t *testing.T) {
	apt := base64.StdEncoding.EncodeToString([]byte("not really a tarball, but bytes"))
	out := "@@os debian 12\n@@manifest\nbase-files\t12.4\nlibc6:i386\t2.36-9\n@@apt\n" + apt[:10] + "\n" + apt[10:] + "\n@@end\n"
	st, err := parseHostState(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.OS != "debian 12" || st.Packages["base-files"] != "12.4" || st.Packages["libc6:i386"] != "2.36-9" || len(st.Packages) != 2 {
		t.Fatalf("state = %+v", st)
	}
	if string(st.AptConfig) != "not really a tarball, but bytes" {
		t.Fatalf("apt config = %q", st.AptConfig)
	}

	for _, bad := range []struct{ out, want string }{
		{"@@os debian 12\n@@manifest\nbase-files\n@@end\n", "manifest line 3"},
		{"@@os debian 12\n@@manifest\nbase-files\t12.4\n", "no @@end marker"},
		{"@@os debian 12\n@@apt\n%%%\n@@end\n", "apt configuration"},
	} {
		if _, err := parseHostState(bad.out); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseHostState(%q) = %v, want an error with %q", bad.out, err, bad.want)
		}
	}
}

func TestParseMadison(t *testing.T) {
	got := parseMadison("vz-demo-libfoo |      1.0.1 | file:/srv/vz-apt ./ Packages\n" +
		"vz-demo-libfoo |      1.0.0 | file:/srv/vz-apt ./ Packages\nN: Unable to locate package x\n")
	if !got["vz-demo-libfoo=1.0.1"] || !got["vz-demo-libfoo=1.0.0"] || len(got) != 2 {
		t.Fatalf("madison = %v", got)
	}
}

func TestShellWordsQuotes(t *testing.T) {
	if got, want := shellWords([]string{"a", "it's", "$x"}), `'a' 'it'\''s' '$x'`; got != want {
		t.Fatalf("shellWords = %s, want %s", got, want)
	}
}
