package policies

import (
	"errors"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestWindowsOpenAndNextOpen(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	at := func(s string) time.Time { // "2025-03-03 21:59" in Berlin (a Monday)
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	nightly := Window{Name: "nightly", Kind: WindowAllow, Schedule: "0 22 * * *", Duration: 4 * time.Hour, TimeZone: "Europe/Berlin"}
	fridayFreeze := Window{Name: "friday", Kind: WindowDeny, Schedule: "0 12 * * 5", Duration: 30 * time.Hour, TimeZone: "Europe/Berlin"}
	allDay := Window{Name: "always", Kind: WindowAllow, Schedule: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "Europe/Berlin"}
	febThirty := Window{Kind: WindowAllow, Schedule: "0 0 30 2 *", Duration: time.Hour}

	tests := []struct {
		name     string
		ws       Windows
		t        time.Time
		open     bool
		next     time.Time // zero with nextOK false: never
		nextOK   bool
		denyOnly bool
	}{
		{"no windows: always open", nil, at("2025-03-03 10:00"), true, at("2025-03-03 10:00"), true, false},
		{"before the nightly window", Windows{nightly}, at("2025-03-03 21:59"), false, at("2025-03-03 22:00"), true, false},
		{"window opens on the minute", Windows{nightly}, at("2025-03-03 22:00"), true, at("2025-03-03 22:00"), true, false},
		{"open past midnight", Windows{nightly}, at("2025-03-04 01:59"), true, at("2025-03-04 01:59"), true, false},
		{"closed when the duration ends", Windows{nightly}, at("2025-03-04 02:00"), false, at("2025-03-04 22:00"), true, false},
		{"deny wins over allow", Windows{allDay, fridayFreeze}, at("2025-03-07 13:00"), false, at("2025-03-08 18:00"), true, false},
		{"outside the deny window", Windows{allDay, fridayFreeze}, at("2025-03-07 11:59"), true, at("2025-03-07 11:59"), true, false},
		{"deny only: open outside it", Windows{fridayFreeze}, at("2025-03-06 09:00"), true, at("2025-03-06 09:00"), true, false},
		{"next allow opening falls in a freeze: after it, while allowed", Windows{nightly, fridayFreeze}, at("2025-03-07 10:00"), false, at("2025-03-08 22:00"), true, false},
		{"emergency lane ignores allow windows", Windows{nightly}, at("2025-03-03 10:00"), true, at("2025-03-03 10:00"), true, true},
		{"emergency lane still obeys deny", Windows{nightly, fridayFreeze}, at("2025-03-07 13:00"), false, at("2025-03-08 18:00"), true, true},
		{"a window that never opens", Windows{febThirty}, at("2025-03-03 10:00"), false, time.Time{}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.ws
			if tc.denyOnly {
				ws = ws.DenyOnly()
			}
			if got := ws.Open(tc.t); got != tc.open {
				t.Errorf("Open(%s) = %v, want %v", tc.t, got, tc.open)
			}
			next, ok := ws.NextOpen(tc.t)
			if ok != tc.nextOK || !next.Equal(tc.next) {
				t.Errorf("NextOpen(%s) = %s, %v; want %s, %v", tc.t, next, ok, tc.next, tc.nextOK)
			}
		})
	}
}

func TestWindowsForGroups(t *testing.T) {
	inv := vulnzero.Inventory{
		Hosts:  []vulnzero.Host{{Name: "db1"}, {Name: "web1"}},
		Groups: map[string][]string{"databases": {"db1"}},
	}
	p := RolloutPolicy{Windows: []Window{
		{Name: "everyone", Kind: WindowDeny, Schedule: "@daily", Duration: time.Hour},
		{Name: "db nights", Kind: WindowAllow, Schedule: "0 1 * * *", Duration: time.Hour, Groups: []string{"databases"}},
		{Name: "unknown group", Kind: WindowAllow, Schedule: "0 1 * * *", Duration: time.Hour, Groups: []string{"nope"}},
	}}
	names := func(ws Windows) string {
		var s []string
		for _, w := range ws {
			s = append(s, w.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(p.WindowsFor("db1", inv)); got != "everyone,db nights" {
		t.Errorf("db1 windows = %s", got)
	}
	if got := names(p.WindowsFor("web1", inv)); got != "everyone" {
		t.Errorf("web1 windows = %s", got)
	}
}

func TestParseRolloutPolicyExtensions(t *testing.T) {
	good := `apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: web
spec:
  selector: {role: web}
  strategy: blue-green
  maxFailures: "10%"
  soak: 15m
  consecutiveErrorLimit: 3
  checkInterval: 5s
  check:
    url: http://lb.internal/healthz
    expectStatus: 204
  blueGreen:
    groups: [blue, green]
    switch:
      host: lb1
      command: /usr/local/bin/switch "$VZ_ACTIVE_GROUP"
  windows:
    - name: nights
      kind: allow
      schedule: "0 22 * * *"
      duration: 6h
      timeZone: Europe/Berlin
    - name: freeze
      kind: deny
      schedule: "0 0 24 12 *"
      duration: 48h
      groups: [green]
  emergency:
    kev: true
  reboot:
    command: systemctl reboot
    timeout: 15m
`
	s, err := Parse(map[string][]byte{"policies/web.yaml": []byte(good)})
	if err != nil {
		t.Fatal(err)
	}
	web := []vulnzero.Host{{Name: "web-1", Labels: map[string]string{"role": "web"}}}
	spec, pol := s.RolloutFor(vulnzero.Patch{}, web)
	if spec.Strategy != StrategyBlueGreen || spec.MaxFailures != "10%" || spec.Soak != 15*time.Minute || spec.ConsecutiveErrorLimit != 3 ||
		spec.CheckInterval != 5*time.Second || spec.Check == nil || spec.Check.ExpectStatus != 204 || strings.Join(spec.Groups, ",") != "blue,green" {
		t.Errorf("spec = %+v", spec)
	}
	if pol.BlueGreen.Switch == nil || pol.BlueGreen.Switch.Host != "lb1" || len(pol.Windows) != 2 || !pol.Emergency.KEV ||
		pol.Reboot.Timeout != 15*time.Minute || pol.Windows[1].Groups[0] != "green" {
		t.Errorf("policy = %+v", pol)
	}

	// A patch naming another strategy does not inherit the canary's stages.
	spec, _ = Defaults().RolloutFor(vulnzero.Patch{Rollout: &vulnzero.RolloutSpec{Strategy: StrategyRolling, BatchSize: "25%"}}, web)
	if spec.Strategy != StrategyRolling || len(spec.Stages) != 0 || spec.BatchSize != "25%" || spec.MaxParallel != 10 {
		t.Errorf("rolling override = %+v", spec)
	}

	header := "apiVersion: vulnzero.dev/v1\nkind: RolloutPolicy\nname: x\nspec:\n"
	bad := []struct{ name, spec, want string }{
		{"rolling without batch size", "  strategy: rolling\n", `x.yaml:5: spec.batchSize: rolling needs a batchSize`},
		{"rolling with stages", "  strategy: rolling\n  batchSize: \"2\"\n  stages:\n    - hosts: \"1\"\n", `x.yaml:8: spec.stages: rolling takes no stages`},
		{"zero batch", "  strategy: rolling\n  batchSize: \"0%\"\n", `x.yaml:6: spec.batchSize: must be at least 1`},
		{"blue-green without groups", "  strategy: blue-green\n", `x.yaml:5: spec.strategy: blue-green needs blueGreen.groups`},
		{"blue-green without switch", "  strategy: blue-green\n  blueGreen:\n    groups: [a, b]\n", `x.yaml:7: spec.blueGreen: needs a switch hook`},
		{"same group twice", "  strategy: blue-green\n  blueGreen:\n    groups: [a, a]\n", `spec.groups: blue-green needs two different groups`},
		{"bad window kind", "  windows:\n    - kind: maybe\n      schedule: \"@daily\"\n      duration: 1h\n", `x.yaml:6: spec.windows.0: window 1: kind "maybe" is not allow or deny`},
		{"bad schedule", "  windows:\n    - kind: allow\n      schedule: \"0 25 * * *\"\n      duration: 1h\n    - kind: deny\n      schedule: nope\n      duration: 1h\n", `x.yaml:6: spec.windows.0: window 1: schedule "0 25 * * *"`},
		{"second window's time zone", "  windows:\n    - kind: allow\n      schedule: \"@daily\"\n      duration: 1h\n    - kind: deny\n      schedule: \"@daily\"\n      duration: 1h\n      timeZone: Mars/Olympus\n", `x.yaml:9: spec.windows.1: window 2: time zone "Mars/Olympus"`},
		{"window without duration", "  windows:\n    - kind: allow\n      schedule: \"@daily\"\n", `window 1: duration must be positive`},
		{"check with url and command", "  check:\n    url: http://x/\n    host: a\n    command: true\n", `x.yaml:6: spec.check: give either url, or host and command`},
		{"stage check without command", "  stages:\n    - hosts: \"1\"\n      check:\n        host: a\n", `x.yaml:8: spec.stages: stage 1 check: needs a url, or a host and a command`},
		{"bad stage max failures", "  stages:\n    - hosts: \"1\"\n    - hosts: \"50%\"\n      maxFailures: some\n", `x.yaml:8: spec.stages: stage 2 maxFailures:`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"x.yaml": []byte(header + tc.spec)})
			if err == nil || !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
