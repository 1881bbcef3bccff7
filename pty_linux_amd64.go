package netrunner

import "golang.org/x/sys/unix"

func init() {
	for _, nr := range []int{unix.SYS_POLL, unix.SYS_SELECT, unix.SYS_EPOLL_WAIT} {
		pollCalls[nr] = true
	}
}
