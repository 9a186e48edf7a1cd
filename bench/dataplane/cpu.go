package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuTimes is a line of /proc/stat: "cpu", in clock ticks summed over all
// CPUs, or "cpuN", one CPU's.
type cpuTimes struct {
	total, idle, softirq uint64
}

func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line, "cpu")
}

// readCPUs is the "cpuN" lines of /proc/stat: each CPU's times, by N.
func readCPUs() ([]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUs(string(b))
}

func parseCPUs(stat string) ([]cpuTimes, error) {
	var out []cpuTimes
	for _, line := range strings.Split(stat, "\n") {
		name, _, _ := strings.Cut(line, " ")
		if len(name) <= 3 || !strings.HasPrefix(name, "cpu") {
			continue
		}
		if n, err := strconv.Atoi(name[3:]); err != nil || n != len(out) {
			return nil, fmt.Errorf("/proc/stat: %q out of order", name)
		}
		t, err := parseCPULine(line, name)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// parseCPULine reads a /proc/stat line of CPU times whose first field is
// name ("cpu" for the sum, "cpuN" for one CPU).
func parseCPULine(line, name string) (cpuTimes, error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != name {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected line %q", line)
	}
	var t cpuTimes
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice]
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
			t.idle += v
		case 6:
			t.softirq += v
		}
	}
	return t, nil
}

// cpuUse is the machine's CPU use between two readings, in percent of all
// CPUs: busy (everything but idle and iowait) and the softirq part of it,
// where forwarding, NAT and DR run. It covers every process on the
// machine, not only the bench's.
type cpuUse struct {
	Busy    float64 `json:"busy_pct"`
	Softirq float64 `json:"softirq_pct"`
}

func cpuBetween(a, b cpuTimes) cpuUse {
	d := float64(b.total - a.total)
	if d <= 0 {
		return cpuUse{}
	}
	return cpuUse{
		Busy:    100 * (d - float64(b.idle-a.idle)) / d,
		Softirq: 100 * float64(b.softirq-a.softirq) / d,
	}
}

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// nsProcTicks returns utime+stime, in USER_HZ ticks, of every process in
// the network namespace bind-mounted at /run/netns/<ns>, by PID.
func nsProcTicks(ns string) (map[int]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
		return nil, err
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]uint64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil || link != want {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited
		}
		// pid (comm) state ppid ...: fields after the last ')' start
		// at field 3; utime and stime are fields 14 and 15.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, err1 := strconv.ParseUint(f[11], 10, 64)
		s, err2 := strconv.ParseUint(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[pid] = u + s
	}
	return out, nil
}

// ticksSince sums what the processes of after used since before (all of
// it for a process that was not there before).
func ticksSince(before, after map[int]uint64) uint64 {
	var n uint64
	for pid, t := range after {
		if b := before[pid]; b <= t {
			n += t - b
		}
	}
	return n
}

// cpuPerRequest is the CPU time each part of the lab spent per request,
// in microseconds: the client (wrk), the two real servers' nginx, the
// director's processes (haproxy; tandem's health checks), and the
// machine's softirq time, where routing, DNAT and DR run (not billed to
// any process, and shared with whatever else the machine is doing).
type cpuPerRequest struct {
	Client   float64 `json:"client_us"`
	Servers  float64 `json:"servers_us"`
	Director float64 `json:"director_us"`
	Softirq  float64 `json:"softirq_us"`
}

func (c cpuPerRequest) total() float64 { return c.Client + c.Servers + c.Director + c.Softirq }

// usPerRequest spreads us microseconds over n requests.
func usPerRequest(us float64, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return us / float64(n)
}

func ticksToUS(t uint64) float64 { return float64(t) * 1e6 / userHZ }
