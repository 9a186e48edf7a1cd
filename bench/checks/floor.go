package main

import (
	"syscall"
	"time"
)

// connectFloor is the CPU one bare TCP check costs this machine: a
// blocking socket, connect and close to the TCP listeners, with no Go
// networking, poller or scheduler around it. On loopback the kernel does
// both ends of the handshake and of the close in the connecting process,
// so this is the least any checker can pay per TCP_CHECK here; the TCP
// row's CPU is this floor plus the checker's own overhead.
func connectFloor(subnet byte, servers, n int) (time.Duration, error) {
	start := cpuTime()
	for i := range n {
		// Skip the victims (the last two), which may be closed.
		ap := serverAddr(subnet, i%max(servers-2, 1))
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
		syscall.Close(fd)
		if err != nil {
			return 0, err
		}
	}
	return (cpuTime() - start) / time.Duration(n), nil
}
