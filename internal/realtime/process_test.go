package realtime

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestProcessPriority: the process runs one below the lowest priority a
// role asks for, at least at 1; roles without one (0) do not count.
func TestProcessPriority(t *testing.T) {
	for _, c := range []struct {
		roles []int
		want  int
	}{
		{nil, 0},
		{[]int{0, 0}, 0},
		{[]int{10, 0}, 9},
		{[]int{0, 20}, 19},
		{[]int{10, 5}, 4},
		{[]int{5, 10}, 4},
		{[]int{1, 10}, 1},
	} {
		if got := ProcessPriority(c.roles...); got != c.want {
			t.Errorf("ProcessPriority(%v) = %d, want %d", c.roles, got, c.want)
		}
	}
}

// TestRaises: threads under a normal policy, or real-time below the
// process's priority, are raised; a protocol thread at or above it is
// left alone.
func TestRaises(t *testing.T) {
	for _, c := range []struct {
		a    unix.SchedAttr
		want bool
	}{
		{unix.SchedAttr{Policy: unix.SCHED_NORMAL}, true},
		{unix.SchedAttr{Policy: unix.SCHED_BATCH}, true},
		{unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 4}, true},
		{unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 5}, false},
		{unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 7}, false},
		{unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 9}, false},
	} {
		if got := raises(&c.a, 5); got != c.want {
			t.Errorf("raises(%+v, 5) = %v, want %v", c.a, got, c.want)
		}
	}
}

// TestTaskIDs: thread IDs are the numeric names in /proc/self/task.
func TestTaskIDs(t *testing.T) {
	if got := taskIDs([]string{"12", "x", "0", "345", ""}); !slices.Equal(got, []int{12, 345}) {
		t.Errorf("taskIDs = %v", got)
	}
}
