package conn

import (
	"os/exec"
	"syscall"
)

// mountPrivateDevShm covers /dev/shm with an empty tmpfs, as a container
// would have. The process must run in a mount namespace of its own.
func mountPrivateDevShm() error {
	return syscall.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "")
}

// inMountNamespace starts cmd in a mount namespace of its own.
func inMountNamespace(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
}
