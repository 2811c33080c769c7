package migrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/10_later.sql":  {Data: []byte("C")},
		"m/README.txt":    {Data: []byte("ignored")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	want := "0001_init.sql=A 0002_more.sql=B 10_later.sql=C"
	if strings.Join(got, " ") != want {
		t.Errorf("Load = %v, want %s", got, want)
	}
	if ms[2].Version != 10 {
		t.Errorf("version of 10_later.sql = %d, want 10", ms[2].Version)
	}
}

func TestLoadErrors(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number":   {"m/init.sql": {Data: []byte("A")}},
		"zero":        {"m/0000_init.sql": {Data: []byte("A")}},
		"duplicate":   {"m/0001_a.sql": {Data: []byte("A")}, "m/1_b.sql": {Data: []byte("B")}},
		"no such dir": {},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
}
