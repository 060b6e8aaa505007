package testutil

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident returns how many bytes of the mapped regions are backed by
// memory now (mincore). Each region must start on a page boundary.
func Resident(regions ...[]byte) (int, error) {
	page := os.Getpagesize()
	n := 0
	for _, r := range regions {
		if len(r) == 0 {
			continue
		}
		vec := make([]byte, (len(r)+page-1)/page)
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&r[0])), uintptr(len(r)), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			return 0, os.NewSyscallError("mincore", errno)
		}
		for _, v := range vec {
			n += int(v&1) * page
		}
	}
	return n, nil
}
