// Package uring is the small part of Linux io_uring that Tandem's
// TCP_CHECK needs: a ring whose submission entries open a socket straight
// into a registered ("direct") descriptor slot, connect it under a linked
// timeout, and close it. A batch of such checks costs one io_uring_enter
// instead of three or more system calls per check, and the sockets never
// enter the process's descriptor table.
//
// A Ring is not safe for concurrent use, and it is bound to the OS thread
// that created it (IORING_SETUP_SINGLE_ISSUER, DEFER_TASKRUN: completion
// work runs only when that thread enters the kernel to wait). Create and
// use it from one goroutine under runtime.LockOSThread.
//
// The layouts and constants are those of <linux/io_uring.h>.
package uring

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes (enum io_uring_op).
const (
	opLinkTimeout = 15
	opConnect     = 16
	opClose       = 19
	opSocket      = 45
)

// SQE flags.
const (
	sqeFixedFile   = 1 << 0
	sqeIOLink      = 1 << 2
	sqeSkipSuccess = 1 << 6
)

// Setup flags, features and enter flags.
const (
	setupSubmitAll    = 1 << 7
	setupCoopTaskrun  = 1 << 8
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featNoDrop = 1 << 1
	featExtArg = 1 << 8

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	registerFiles = 2
	registerProbe = 8

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// params is struct io_uring_params; the offsets are struct
// io_sqring_offsets (head, tail, ring_mask, ring_entries, flags, dropped,
// array, resv1, user_addr) and io_cqring_offsets (head, tail, ring_mask,
// ring_entries, overflow, cqes, flags, resv1, user_addr) as uint32 words.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32
	cqOff                                                                  [10]uint32
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode    uint8
	flags     uint8
	ioprio    uint16
	fd        int32
	off       uint64 // also addr2
	addr      uint64
	len       uint32
	opFlags   uint32
	userData  uint64
	bufIndex  uint16
	pers      uint16
	fileIndex uint32
	addr3     uint64
	_         uint64
}

// cqe is struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	_         uint32
	ts        uint64
}

// SocketFailed marks the completion of a socket that could not be made.
const SocketFailed = 1 << 63

// ErrUnsupported wraps every reason this kernel cannot run a Ring: no
// io_uring, io_uring disabled by sysctl or seccomp, or a kernel older than
// the features used (DEFER_TASKRUN needs 6.1, the socket opcode 5.19).
var ErrUnsupported = errors.New("io_uring unsupported")

// Ring is one io_uring with a table of direct descriptor slots.
type Ring struct {
	fd             int
	sqMem, cqMem   []byte
	sqeMem         []byte
	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []sqe
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe
	tail           uint32 // our copy of the SQ tail, published by Enter
	slots          []slot
	arg            getEventsArg
	waitTS         unix.Timespec
}

// slot holds what the kernel reads, for one socket, after the submission
// call returned (a linked request is prepared later): the address and the
// timeout. Go's heap does not move, and the Ring keeps them reachable.
type slot struct {
	sa      [unix.SizeofSockaddrInet6]byte
	saLen   uint32
	timeout unix.Timespec
}

// New sets up a ring of at least entries submission entries and slots
// direct descriptor slots. Call it on the locked OS thread that will use
// the ring. Errors from a kernel that cannot do it wrap ErrUnsupported.
func New(entries uint32, slots int) (*Ring, error) {
	p := params{flags: setupSubmitAll | setupCoopTaskrun | setupSingleIssuer | setupDeferTaskrun}
	fd, _, errno := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, errno)
	}
	r := &Ring{fd: int(fd), slots: make([]slot, slots)}
	if err := r.setup(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) setup(p *params) error {
	if p.features&featExtArg == 0 || p.features&featNoDrop == 0 {
		return fmt.Errorf("%w: kernel lacks IORING_FEAT_EXT_ARG or NODROP", ErrUnsupported)
	}
	var err error
	mmap := func(off int64, size uint32) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = unix.Mmap(r.fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		return b
	}
	r.sqMem = mmap(offSQRing, p.sqOff[6]+p.sqEntries*4)
	r.cqMem = mmap(offCQRing, p.cqOff[5]+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	r.sqeMem = mmap(offSQEs, p.sqEntries*uint32(unsafe.Sizeof(sqe{})))
	if err != nil {
		return fmt.Errorf("io_uring mmap: %w", err)
	}
	word := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = word(r.sqMem, p.sqOff[0]), word(r.sqMem, p.sqOff[1]), *word(r.sqMem, p.sqOff[2])
	r.sqArray = unsafe.Slice(word(r.sqMem, p.sqOff[6]), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = word(r.cqMem, p.cqOff[0]), word(r.cqMem, p.cqOff[1]), *word(r.cqMem, p.cqOff[2])
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.cqMem[p.cqOff[5]])), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	if err := r.probe(opSocket, opConnect, opClose, opLinkTimeout); err != nil {
		return err
	}
	files := make([]int32, len(r.slots))
	for i := range files {
		files[i] = -1 // sparse: every slot starts empty
	}
	if _, _, errno := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerFiles,
		uintptr(unsafe.Pointer(&files[0])), uintptr(len(files)), 0, 0); errno != 0 {
		return fmt.Errorf("%w: register %d file slots: %v", ErrUnsupported, len(files), errno)
	}
	return nil
}

// probe checks that the kernel supports each opcode (IORING_REGISTER_PROBE:
// struct io_uring_probe, 16 bytes, then 8 bytes per opcode whose flags
// carry IO_URING_OP_SUPPORTED).
func (r *Ring) probe(ops ...uint8) error {
	const nops = 64
	var buf [16 + 8*nops]byte
	if _, _, errno := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe,
		uintptr(unsafe.Pointer(&buf[0])), nops, 0, 0); errno != 0 {
		return fmt.Errorf("%w: probe: %v", ErrUnsupported, errno)
	}
	for _, op := range ops {
		if op > buf[0] || buf[16+8*int(op)+2]&1 == 0 {
			return fmt.Errorf("%w: opcode %d not supported by this kernel", ErrUnsupported, op)
		}
	}
	return nil
}

// Slots is the number of direct descriptor slots.
func (r *Ring) Slots() int { return len(r.slots) }

func (r *Ring) next() *sqe {
	i := r.tail & r.sqMask
	r.sqArray[i] = i
	s := &r.sqes[i]
	*s = sqe{}
	r.tail++
	return s
}

// Connect queues, in slot, a TCP socket of addr's family connected to addr
// within timeout: three entries (socket, connect, linked timeout). The
// connect's completion carries user: 0 when connected, a negative errno
// otherwise, -ECANCELED when the timeout fired. The socket's completion
// appears only when the socket could not be made (with user too), the
// timeout's never matters and carries 0. The slot stays in use until
// CloseSlot.
func (r *Ring) Connect(slotIdx int, addr netip.AddrPort, timeout time.Duration, user uint64) {
	sl := &r.slots[slotIdx]
	family := unix.AF_INET
	if addr.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sl.sa[0]))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.Addr().As4()}
		putPort(&sa.Port, addr.Port())
		sl.saLen = unix.SizeofSockaddrInet4
	} else {
		family = unix.AF_INET6
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sl.sa[0]))
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.Addr().As16()}
		putPort(&sa.Port, addr.Port())
		sl.saLen = unix.SizeofSockaddrInet6
	}
	sl.timeout = unix.NsecToTimespec(int64(timeout))

	s := r.next()
	s.opcode, s.flags = opSocket, sqeIOLink|sqeSkipSuccess
	s.fd, s.off = int32(family), unix.SOCK_STREAM
	s.fileIndex = uint32(slotIdx) + 1 // 0 would mean a plain descriptor
	s.userData = user | SocketFailed

	c := r.next()
	c.opcode, c.flags = opConnect, sqeFixedFile|sqeIOLink
	c.fd = int32(slotIdx)
	c.addr = uint64(uintptr(unsafe.Pointer(&sl.sa[0])))
	c.off = uint64(sl.saLen)
	c.userData = user

	t := r.next()
	t.opcode = opLinkTimeout
	t.addr = uint64(uintptr(unsafe.Pointer(&sl.timeout)))
	t.len = 1
}

// putPort stores a port in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// CloseSlot queues the close of the socket in slot (one entry). A slot
// whose socket was never made is closed harmlessly; its completion carries
// 0 and is ignored.
func (r *Ring) CloseSlot(slotIdx int) {
	s := r.next()
	s.opcode, s.flags = opClose, sqeSkipSuccess
	s.fileIndex = uint32(slotIdx) + 1
}

// Enter submits the queued entries, runs the completion work that is
// ready (with DEFER_TASKRUN it runs only here) and, when wait > 0, waits
// until at least wait completions are ready or timeout passed.
// Interruptions and the timeout are not errors.
func (r *Ring) Enter(wait int, timeout time.Duration) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	for {
		submit := r.tail - atomic.LoadUint32(r.sqHead)
		r.arg = getEventsArg{}
		if wait > 0 {
			r.waitTS = unix.NsecToTimespec(int64(timeout))
			r.arg.ts = uint64(uintptr(unsafe.Pointer(&r.waitTS)))
		}
		_, _, errno := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(max(wait, 0)),
			enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.arg)), unsafe.Sizeof(r.arg))
		switch errno {
		case 0, unix.ETIME:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			// The completion queue is full: the caller must reap first.
			return nil
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// Reap calls fn for every ready completion, in order, and frees them.
func (r *Ring) Reap(fn func(user uint64, res int32)) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		fn(c.userData, c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
}

// Close tears the ring down. The kernel cancels what is still in flight
// and closes every socket left in a slot.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.sqMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
