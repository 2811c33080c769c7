package pkgtool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// aptOptions are the apt-get switches the sandbox understands.
type aptOptions struct {
	yes, onlyUpgrade, allowDowngrades bool
}

// aptGet serves apt-get update, download and install.
func (t *tool) aptGet(args []string) int {
	var opts aptOptions
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "--option" || a == "-c" || a == "--config-file":
			i++ // configuration is accepted and ignored
		case strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "--option=") || strings.HasPrefix(a, "--config-file="):
		case a == "-y" || a == "--yes" || a == "--assume-yes":
			opts.yes = true
		case a == "--only-upgrade":
			opts.onlyUpgrade = true
		case a == "--allow-downgrades":
			opts.allowDowngrades = true
		case a == "-q" || a == "-qq" || a == "--quiet" || a == "--no-install-recommends":
		case a == "--":
			words = append(words, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			return t.aptError(fmt.Sprintf("Command line option %s is not understood in combination with the other options", a))
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'y':
					opts.yes = true
				case 'q':
				default:
					return t.aptError(fmt.Sprintf("Command line option '%c' [from %s] is not known.", c, a))
				}
			}
		default:
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		fmt.Fprintln(t.stderr, "E: No operation given (the VulnZero sandbox supports update, download and install)")
		return exitAptError
	}
	switch words[0] {
	case "update":
		return t.aptUpdate()
	case "download":
		return t.aptDownload(words[1:])
	case "install":
		return t.aptInstall(opts, words[1:])
	default:
		return t.aptError("Invalid operation " + words[0])
	}
}

func (t *tool) aptError(msg string) int {
	fmt.Fprintln(t.stderr, "E: "+msg)
	return exitAptError
}

// lockHeld reports whether the sandbox's dpkg lock is held, and by whom.
func (t *tool) lockHeld() (string, bool) {
	data, err := os.ReadFile(t.path(LockFile))
	if err != nil {
		return "", false
	}
	holder := strings.TrimSpace(string(data))
	pid, name, _ := strings.Cut(holder, " ")
	if pid == "" {
		pid = "1"
	}
	if name == "" {
		name = "apt-get"
	}
	return fmt.Sprintf("process %s (%s)", pid, name), true
}

func (t *tool) aptUpdate() int {
	if holder, held := t.lockHeld(); held {
		fmt.Fprintf(t.stderr, "E: Could not get lock /var/lib/apt/lists/lock. It is held by %s\n", holder)
		fmt.Fprintln(t.stderr, "N: Be aware that removing the lock file is not a solution and may break your system.")
		fmt.Fprintln(t.stderr, "E: Unable to lock directory /var/lib/apt/lists/")
		return exitAptError
	}
	fmt.Fprintln(t.stdout, "Hit:1 vzpkg:sandbox stable InRelease")
	fmt.Fprintln(t.stdout, "Reading package lists... Done")
	return 0
}

// debFileName is the file name apt gives a downloaded package.
func debFileName(pkg, version string) string {
	return fmt.Sprintf("%s_%s_%s.deb", pkg, strings.ReplaceAll(version, ":", "%3a"), fakeArch)
}

func fakeDeb(pkg, version string) []byte {
	return fmt.Appendf(nil, "%s\nPackage: %s\nVersion: %s\nArchitecture: %s\n", fakeDebMagic, pkg, version, fakeArch)
}

// readFakeDeb reads a file written by apt-get download.
func readFakeDeb(path string) (pkg, version string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != fakeDebMagic {
		return "", "", errors.New("Invalid archive signature") //nolint:staticcheck // ST1005: apt's own message, shown as apt shows it
	}
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "Package":
			pkg = strings.TrimSpace(v)
		case "Version":
			version = strings.TrimSpace(v)
		}
	}
	if pkg == "" || version == "" {
		return "", "", errors.New("Could not read meta data: no Package or Version field") //nolint:staticcheck // ST1005: apt's own message
	}
	return pkg, version, nil
}

func (t *tool) aptDownload(args []string) int {
	if len(args) == 0 {
		return t.aptError("Must specify at least one package to fetch source for")
	}
	avail, err := t.loadAvailable()
	if err != nil {
		return t.aptError(err.Error())
	}
	status, err := t.loadStatus()
	if err != nil {
		return t.aptError(err.Error())
	}
	type fetch struct{ pkg, version string }
	var fetches []fetch
	for _, a := range args {
		pkg, version, pinned := strings.Cut(a, "=")
		versions, known := avail[pkg]
		if !known && !status[pkg].installed() {
			return t.aptError("Unable to locate package " + pkg)
		}
		if !pinned {
			if len(versions) == 0 {
				return t.aptError(fmt.Sprintf("Can't find a source to download version '%s' of '%s:%s'", status[pkg].Version, pkg, fakeArch))
			}
			version = versions[len(versions)-1]
		}
		if !contains(versions, version) {
			if status[pkg].installed() && status[pkg].Version == version {
				return t.aptError(fmt.Sprintf("Can't find a source to download version '%s' of '%s:%s'", version, pkg, fakeArch))
			}
			return t.aptError(fmt.Sprintf("Version '%s' for '%s' was not found", version, pkg))
		}
		fetches = append(fetches, fetch{pkg, version})
	}
	for i, f := range fetches {
		data := fakeDeb(f.pkg, f.version)
		fmt.Fprintf(t.stdout, "Get:%d vzpkg:sandbox stable/main %s %s %s [%d B]\n", i+1, f.pkg, fakeArch, f.version, len(data))
		// apt-get download writes into the current directory.
		if err := os.WriteFile(debFileName(f.pkg, f.version), data, 0o644); err != nil {
			return t.aptError(fmt.Sprintf("Write error - %v", err))
		}
	}
	fmt.Fprintf(t.stdout, "Fetched %d files\n", len(fetches))
	return 0
}

// change is one package apt-get install will set to a version.
type change struct {
	pkg, from, to string
	fromFile      string // the .deb named on the command line, if any
}

func (t *tool) aptInstall(opts aptOptions, args []string) int {
	if len(args) == 0 {
		return t.aptError("No packages specified")
	}
	if holder, held := t.lockHeld(); held {
		fmt.Fprintf(t.stderr, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by %s\n", holder)
		fmt.Fprintln(t.stderr, "N: Be aware that removing the lock file is not a solution and may break your system.")
		fmt.Fprintln(t.stderr, "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?")
		return exitAptError
	}
	avail, err := t.loadAvailable()
	if err != nil {
		return t.aptError(err.Error())
	}
	status, err := t.loadStatus()
	if err != nil {
		return t.aptError(err.Error())
	}
	fmt.Fprintln(t.stdout, "Reading package lists... Done")
	fmt.Fprintln(t.stdout, "Building dependency tree... Done")
	fmt.Fprintln(t.stdout, "Reading state information... Done")

	var upgrades, downgrades, installs []change
	for _, a := range args {
		var c change
		switch {
		case strings.HasSuffix(a, ".deb") && strings.Contains(a, "/"):
			pkg, version, err := readFakeDeb(a)
			if errors.Is(err, os.ErrNotExist) {
				return t.aptError("Unsupported file " + a + " given on commandline")
			}
			if err != nil {
				abs, _ := filepath.Abs(a)
				return t.aptError(fmt.Sprintf("%v\nE: Could not read meta data from %s", err, abs))
			}
			fmt.Fprintf(t.stdout, "Note, selecting '%s' instead of '%s'\n", pkg, a)
			c = change{pkg: pkg, to: version, fromFile: a}
		default:
			pkg, version, pinned := strings.Cut(a, "=")
			versions, known := avail[pkg]
			if !known && !status[pkg].installed() {
				return t.aptError("Unable to locate package " + pkg)
			}
			switch {
			case pinned && !contains(versions, version) && status[pkg].Version != version:
				return t.aptError(fmt.Sprintf("Version '%s' for '%s' was not found", version, pkg))
			case !pinned:
				// The candidate: the highest version the repository has, but
				// never below what is installed (apt does not downgrade on its own).
				version = status[pkg].Version
				if len(versions) > 0 {
					if top := versions[len(versions)-1]; version == "" || mustCompare(top, version) > 0 {
						version = top
					}
				}
			}
			c = change{pkg: pkg, to: version}
		}
		cur := status[c.pkg]
		if !cur.installed() {
			if opts.onlyUpgrade {
				fmt.Fprintf(t.stdout, "Skipping %s, it is not installed and only upgrades are requested.\n", c.pkg)
				continue
			}
			installs = append(installs, c)
			continue
		}
		c.from = cur.Version
		switch cmp := mustCompare(c.to, cur.Version); {
		case cmp == 0 && cur.Status == statusInstalled:
			fmt.Fprintf(t.stdout, "%s is already the newest version (%s).\n", c.pkg, c.to)
		case cmp < 0:
			downgrades = append(downgrades, c)
		default:
			upgrades = append(upgrades, c)
		}
	}

	list := func(header string, cs []change) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintln(t.stdout, header)
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = c.pkg
		}
		fmt.Fprintln(t.stdout, "  "+strings.Join(names, " "))
	}
	list("The following NEW packages will be installed:", installs)
	list("The following packages will be DOWNGRADED:", downgrades)
	list("The following packages will be upgraded:", upgrades)
	// apt mentions downgrades in its summary only when there are some.
	if len(downgrades) > 0 {
		fmt.Fprintf(t.stdout, "%d upgraded, %d newly installed, %d downgraded, 0 to remove and 0 not upgraded.\n",
			len(upgrades), len(installs), len(downgrades))
	} else {
		fmt.Fprintf(t.stdout, "%d upgraded, %d newly installed, 0 to remove and 0 not upgraded.\n", len(upgrades), len(installs))
	}
	all := append(append(append([]change(nil), installs...), downgrades...), upgrades...)
	if len(all) == 0 {
		return 0
	}
	if len(downgrades) > 0 && opts.yes && !opts.allowDowngrades {
		return t.aptError("Packages were downgraded and -y was used without --allow-downgrades.")
	}
	if !opts.yes {
		// apt asks; with no terminal the answer is "no".
		fmt.Fprintln(t.stdout, "Do you want to continue? [Y/n] Abort.")
		return 1
	}

	for _, c := range all {
		if c.from == "" {
			fmt.Fprintf(t.stdout, "Selecting previously unselected package %s.\n", c.pkg)
		}
		fmt.Fprintf(t.stdout, "Preparing to unpack .../%s ...\n", debFileName(c.pkg, c.to))
		if c.from == "" {
			fmt.Fprintf(t.stdout, "Unpacking %s (%s) ...\n", c.pkg, c.to)
		} else {
			fmt.Fprintf(t.stdout, "Unpacking %s (%s) over (%s) ...\n", c.pkg, c.to, c.from)
		}
		status[c.pkg] = pkgState{Name: c.pkg, Version: c.to, Status: "install ok unpacked"}
		if err := t.saveStatus(status); err != nil {
			return t.aptError(err.Error())
		}
	}
	var failed []string
	for _, c := range all {
		fmt.Fprintf(t.stdout, "Setting up %s (%s) ...\n", c.pkg, c.to)
		st := statusInstalled
		if err := t.runHook(c); err != nil {
			fmt.Fprintf(t.stderr, "dpkg: error processing package %s (--configure):\n installed %s package post-installation script subprocess %v\n", c.pkg, c.pkg, err)
			st = statusHalfConfigured
			failed = append(failed, c.pkg)
		}
		status[c.pkg] = pkgState{Name: c.pkg, Version: c.to, Status: st}
		if err := t.saveStatus(status); err != nil {
			return t.aptError(err.Error())
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(t.stderr, "Errors were encountered while processing:\n %s\n", strings.Join(failed, "\n "))
		return t.aptError("Sub-process /usr/bin/dpkg returned an error code (1)")
	}
	return 0
}

// runHook runs the package's postinst hook for the new version, if any, the
// way dpkg runs postinst: "configure <previous version>", from the root.
func (t *tool) runHook(c change) error {
	path := filepath.Join(t.path(HooksDir), hookName(c.pkg, c.to))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	cmd := exec.Command("/bin/sh", path, "configure", c.from)
	cmd.Dir = t.root
	cmd.Stdout = t.stdout
	cmd.Stderr = t.stderr
	// The hook inherits the tool's environment minus VZ_PKGTOOL, so a hook
	// that runs the vulnzero binary gets vulnzero, not this tool.
	env := []string{envRoot + "=" + t.root, "DPKG_MAINTSCRIPT_PACKAGE=" + c.pkg, "DPKG_MAINTSCRIPT_NAME=postinst"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != envTool && k != envRoot {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("returned error exit status %d", exit.ExitCode())
		}
		return err
	}
	return nil
}

// mustCompare compares versions that were validated when written; an
// unparsable one sorts by bytes rather than stopping the tool.
func mustCompare(a, b string) int {
	c, err := compareVersions(a, b)
	if err != nil {
		return strings.Compare(a, b)
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
