// Command bench measures mailbricks blocks side by side with peer
// implementations.
//
// Usage:
//
//	go run . <suite> [-quick] [-keys N] [-impls a,b,...] [suite flags]
//
// A suite is a set of workloads run against each of several
// implementations: ours and its peers. Each implementation runs in its own
// child process (this binary re-executed with a hidden -child flag), so that
// its peak RSS is its own and no engine inherits another's heap, goroutines
// or caches. Children print one line per measurement:
//
//	RESULT suite=<s> workload=<w> impl=<i> ops_per_sec=<n> [<name>=<v> ...]
//
// The parent passes those lines through, then prints comparisons in which
// a higher number is always better for ours:
//
//	RATIO suite=<s> workload=<w> <label>=<x>
//
// Everything else (progress, timings) goes to standard error, so standard
// output can be grepped or diffed between runs.
//
// Adding a suite means one file that implements [suite] and registers its
// constructor with [register] from an init function.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// suites maps a suite name, the first argument, to its constructor.
var suites = map[string]func() suite{}

// register adds a suite under name; each suite's file calls it from init.
func register(name string, mk func() suite) {
	if _, dup := suites[name]; dup {
		panic("bench: suite registered twice: " + name)
	}
	suites[name] = mk
}

// A suite is a set of workloads measured for several implementations.
type suite interface {
	// Impls lists every implementation, ours first; -impls selects among them.
	Impls() []string
	// Flags registers the suite's own flags.
	Flags(fs *flag.FlagSet)
	// Run measures one implementation in this process and reports each
	// measurement through r.
	Run(impl string, c *config, r *reporter) error
	// Ratios derives the comparisons from the results of every
	// implementation that ran.
	Ratios(rs *results) []ratio
}

// config holds the flags every suite shares.
type config struct {
	// Quick selects the short run used by CI.
	Quick bool
	// Keys is the suite's main size parameter; 0 means the suite's default.
	Keys int
	// Dir is where temporary data directories are created.
	Dir string
}

// hiddenFlags are internal flags left out of the usage message.
var hiddenFlags = map[string]bool{"child": true}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(stderr, "")
		return 2
	}
	name := args[0]
	mk, ok := suites[name]
	if !ok {
		usage(stderr, fmt.Sprintf("unknown suite %q", name))
		return 2
	}
	s := mk()

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c config
	var implList, child, cpuProfile string
	fs.BoolVar(&c.Quick, "quick", false, "short run (CI): fewer keys and operations")
	fs.IntVar(&c.Keys, "keys", 0, "number of keys to fill (0: the suite's default)")
	fs.StringVar(&c.Dir, "dir", "", "parent of the temporary data directories (default: the system temp dir)")
	fs.StringVar(&implList, "impls", strings.Join(s.Impls(), ","), "comma-separated implementations to run")
	fs.StringVar(&child, "child", "", "internal: run one implementation in this process")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write each implementation's CPU profile to this path with \".<impl>\" appended")
	s.Flags(fs)
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		if errors.Is(err, flag.ErrHelp) {
			err = nil
		}
		usage(stderr, errString(err))
		fmt.Fprintf(stderr, "\nflags of suite %s:\n", name)
		printFlags(stderr, fs)
		if err == nil {
			return 0
		}
		return 2
	}

	if child != "" {
		if cpuProfile != "" {
			f, err := os.Create(cpuProfile + "." + child)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: %s: cpu profile: %v\n", name, child, err)
				return 1
			}
			defer func() {
				pprof.StopCPUProfile()
				f.Close()
			}()
		}
		r := &reporter{suite: name, impl: child, w: stdout}
		if err := s.Run(child, &c, r); err != nil {
			fmt.Fprintf(stderr, "%s: %s: %v\n", name, child, err)
			return 1
		}
		return 0
	}

	impls, err := selectImpls(implList, s.Impls())
	if err != nil {
		usage(stderr, err.Error())
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	rs := &results{}
	failed := 0
	for _, impl := range impls {
		cargs := append([]string{name, "-child=" + impl}, args[1:]...)
		if err := runChild(exe, cargs, impl, rs, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "bench: %s %s: %v\n", name, impl, err)
			failed++
		}
	}
	for _, r := range s.Ratios(rs) {
		fmt.Fprintf(stdout, "RATIO suite=%s workload=%s %s=%s\n", name, r.Workload, r.Label, formatRatio(r.Value))
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func usage(w io.Writer, problem string) {
	if problem != "" {
		fmt.Fprintf(w, "bench: %s\n", problem)
	}
	names := make([]string, 0, len(suites))
	for n := range suites {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "usage: go run . <suite> [-quick] [-keys N] [-impls a,b] [flags]\nsuites: %s\n", strings.Join(names, ", "))
	fmt.Fprintln(w, "run 'go run . <suite> -h' for a suite's flags")
}

// printFlags prints fs's defaults without the hidden flags.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	visible := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if !hiddenFlags[f.Name] {
			visible.Var(f.Value, f.Name, f.Usage)
		}
	})
	visible.SetOutput(w)
	visible.PrintDefaults()
}

func selectImpls(list string, all []string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(all, s) {
			return nil, fmt.Errorf("unknown implementation %q (have %s)", s, strings.Join(all, ","))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no implementation selected")
	}
	return out, nil
}

// runChild runs one implementation in a child process, passing its RESULT
// lines to stdout and recording them in rs; its other output goes to stderr.
func runChild(exe string, args []string, impl string, rs *results, stdout, stderr io.Writer) error {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "RESULT ") {
			fmt.Fprintln(stderr, line)
			continue
		}
		fmt.Fprintln(stdout, line)
		res, err := parseResult(line)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", impl, err)
			continue
		}
		rs.add(res)
	}
	scanErr := sc.Err()
	if err := cmd.Wait(); err != nil {
		return err
	}
	return scanErr
}

// result is one RESULT line.
type result struct {
	Suite, Workload, Impl string
	OpsPerSec             float64
	Extra                 []kv
}

// kv is a named extra value of a result.
type kv struct {
	Name  string
	Value float64
}

// ExtraValue returns the extra value with the given name.
func (r result) ExtraValue(name string) (float64, bool) {
	for _, e := range r.Extra {
		if e.Name == name {
			return e.Value, true
		}
	}
	return 0, false
}

func parseResult(line string) (result, error) {
	var r result
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "RESULT" {
		return r, fmt.Errorf("not a RESULT line: %q", line)
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return r, fmt.Errorf("bad field %q in %q", f, line)
		}
		switch k {
		case "suite":
			r.Suite = v
		case "workload":
			r.Workload = v
		case "impl":
			r.Impl = v
		default:
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return r, fmt.Errorf("bad number %q in %q", f, line)
			}
			if k == "ops_per_sec" {
				r.OpsPerSec = x
			} else {
				r.Extra = append(r.Extra, kv{k, x})
			}
		}
	}
	if r.Workload == "" || r.Impl == "" {
		return r, fmt.Errorf("RESULT line without workload or impl: %q", line)
	}
	return r, nil
}

// results collects the RESULT lines of every child.
type results struct {
	list []result
}

func (rs *results) add(r result) { rs.list = append(rs.list, r) }

// get returns the result of a workload for an implementation.
func (rs *results) get(workload, impl string) (result, bool) {
	for _, r := range rs.list {
		if r.Workload == workload && r.Impl == impl {
			return r, true
		}
	}
	return result{}, false
}

// ratio is one RATIO line; Value is higher-is-better.
type ratio struct {
	Workload, Label string
	Value           float64
}

// reporter prints a child's RESULT lines.
type reporter struct {
	suite, impl string
	w           io.Writer
}

// result prints one measurement.
func (r *reporter) result(workload string, opsPerSec float64, extra ...kv) {
	var b strings.Builder
	fmt.Fprintf(&b, "RESULT suite=%s workload=%s impl=%s ops_per_sec=%s", r.suite, workload, r.impl, formatNum(opsPerSec))
	for _, e := range extra {
		fmt.Fprintf(&b, " %s=%s", e.Name, formatNum(e.Value))
	}
	fmt.Fprintln(r.w, b.String())
}

// formatNum formats a measurement with few decimals: integers (byte
// counts, large rates) without any, small values with up to three
// significant decimals.
func formatNum(x float64) string {
	a := math.Abs(x)
	switch {
	case x == math.Trunc(x) && a < 1e15, a >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 3, 64)
	}
}

func formatRatio(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
