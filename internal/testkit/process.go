package testkit

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a child process started for one test: its output goes to a
// SyncBuffer, it dies with the test binary (SIGKILL on the parent's
// death), and it is killed when the test ends if it still runs.
type Process struct {
	Name string
	Out  *SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts cmd (its Stdout and Stderr are replaced by the
// Process's buffer) for t.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Name: name, Out: &SyncBuffer{}, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits for the process to
// exit, failing t if it does not within a minute.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !p.Exited() {
		t.Fatalf("kill %s: %v", p.Name, err)
	}
	if _, err := p.Wait(time.Minute); err != nil {
		t.Fatalf("kill %s: %v", p.Name, err)
	}
}

// Wait waits up to limit for the process to exit and returns its exit
// error (nil for exit status 0); the second result is non-nil when it
// did not exit in time.
func (p *Process) Wait(limit time.Duration) (exitErr, timeout error) {
	select {
	case <-p.done:
		return p.err, nil
	case <-time.After(limit):
		return nil, fmt.Errorf("%s still running after %s", p.Name, limit)
	}
}
