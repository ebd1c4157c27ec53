// Package supervise keeps a program's parts running as child processes of
// their own: it starts them in stages, restarts a child that ends unasked
// with capped exponential backoff, prefixes every line a child writes with
// its name, and stops them all, last stage first, when it is told to stop.
package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Child is one process to keep running.
type Child struct {
	// Name prefixes every line the child writes and names it in the log.
	Name string
	// Args are what the child is started with, after the program.
	Args []string
	// Env returns the variables the child gets on top of the supervisor's
	// own environment. It is called at every start, so that a restarted
	// child is given what was learned since (another child's address).
	// nil: none.
	Env func() []string
	// Up reports whether a line the child wrote on stdout says it is up;
	// the next stage starts once every child of this one is. nil: a child
	// is up as soon as it has started.
	Up func(line string) bool
}

// Backoff says how long a crashed child waits before it is started again:
// Initial after a first crash, doubling with every crash in a row up to
// Max. A child that ran for Reset or longer before it crashed starts from
// Initial again, so that a crash a day does not wait as long as a crash
// loop.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Reset   time.Duration
}

// DefaultBackoff restarts at once the first time, and at most every ten
// seconds a child that keeps crashing.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Reset: time.Minute}
}

// Next is the wait before restarting a child that crashed after running for
// uptime, when prev was the wait before the start that crashed (0 if that
// was not a restart).
func (b Backoff) Next(prev, uptime time.Duration) time.Duration {
	if prev <= 0 || uptime >= b.Reset {
		return b.Initial
	}
	return min(2*prev, max(b.Max, b.Initial))
}

// DefaultGrace is how long a child is given to stop after SIGTERM before it
// is killed.
const DefaultGrace = 10 * time.Second

// Supervisor runs Stages of children: every child of a stage is started
// once every child of the stage before it is up.
type Supervisor struct {
	// Program is the executable every child runs, with its own Args.
	Program string
	Stages  [][]*Child
	// Stdout and Stderr receive the children's lines, each prefixed with
	// the child's name; Stdout also takes what OnUp writes.
	Stdout, Stderr io.Writer
	Log            *slog.Logger
	Backoff        Backoff
	// Grace is how long a child has to stop after SIGTERM before SIGKILL;
	// 0 means DefaultGrace.
	Grace time.Duration
	// OnUp, when set, is called once, when every child is up, with a
	// writer to Stdout whose every Write is kept whole among the
	// children's lines.
	OnUp func(stdout io.Writer)
}

// Run starts the stages in order and keeps every child running until ctx
// ends; then it stops them, last stage first, the children of a stage
// together, and returns nil. A child that exits before it was ever up
// fails the start: Run stops what it started and returns why.
func (s *Supervisor) Run(ctx context.Context) error {
	width := 0
	for _, stage := range s.Stages {
		for _, c := range stage {
			width = max(width, len(c.Name))
		}
	}
	out := &lines{w: s.Stdout, width: width}
	errOut := &lines{w: s.Stderr, width: width}

	var started []stage
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop()
			started[i].wg.Wait()
		}
	}
	for _, children := range s.Stages {
		// A stage is stopped by the supervisor, in order, never by ctx
		// directly: that would stop every stage at once.
		stageCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		st := stage{stop: stop, wg: &sync.WaitGroup{}}
		started = append(started, st)
		ups := make(chan error, len(children))
		for _, c := range children {
			st.wg.Go(func() { s.keep(stageCtx, c, out, errOut, ups) })
		}
		for range children {
			select {
			case err := <-ups:
				if err != nil {
					stopAll()
					return err
				}
			case <-ctx.Done():
				stopAll()
				return nil
			}
		}
	}
	if s.OnUp != nil {
		s.OnUp(whole{out})
	}
	<-ctx.Done()
	s.Log.Info("stopping every child")
	stopAll()
	return nil
}

// stage is the children started together, and how to stop them.
type stage struct {
	stop func()
	wg   *sync.WaitGroup
}

// keep runs c until ctx ends, starting it again whenever it exits unasked.
// It reports on ups, once, that c is up, or why it never came up.
func (s *Supervisor) keep(ctx context.Context, c *Child, out, errOut *lines, ups chan<- error) {
	log := s.Log.With(slog.String("child", c.Name))
	reported := false
	var wait time.Duration // before the current start; 0 for the first
	for {
		p, err := s.start(c, out, errOut)
		switch {
		case err != nil && !reported:
			ups <- err
			return
		case err != nil:
			wait = s.Backoff.Next(wait, 0)
			log.Error("could not restart", slog.Any("err", err), slog.Duration("after", wait))
		default:
			pid := p.cmd.Process.Pid
			log.Info("started", slog.Int("pid", pid))
			if stopped := s.watch(ctx, p, log, func() {
				log.Info("up", slog.Int("pid", pid))
				if !reported {
					reported = true
					ups <- nil
				}
			}); stopped {
				return
			}
			if !reported {
				ups <- fmt.Errorf("%s exited before it was up (%s)", c.Name, p.cmd.ProcessState)
				return
			}
			wait = s.Backoff.Next(wait, p.uptime())
			log.Warn("restarting", slog.String("status", p.cmd.ProcessState.String()),
				slog.Duration("uptime", p.uptime().Round(time.Millisecond)), slog.Duration("after", wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// watch waits until p exits, calling up when it says it is up; when ctx
// ends first, it stops p and reports stopped.
func (s *Supervisor) watch(ctx context.Context, p *proc, log *slog.Logger, up func()) (stopped bool) {
	isUp := p.up
	for {
		select {
		case <-isUp:
			isUp = nil
			up()
		case <-p.exited:
			// It may have said it was up just before it exited.
			if isUp != nil {
				select {
				case <-isUp:
					up()
				default:
				}
			}
			return false
		case <-ctx.Done():
			s.stop(p, log)
			return true
		}
	}
}

// proc is one run of a child.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	up      chan struct{} // closed when the child says it is up
	exited  chan struct{} // closed once it exited, its output all copied
	ended   time.Time
}

func (p *proc) uptime() time.Duration { return p.ended.Sub(p.started) }

// start starts c, copying its output line by line until it exits.
func (s *Supervisor) start(c *Child, out, errOut *lines) (*proc, error) {
	cmd := exec.Command(s.Program, c.Args...)
	if c.Env != nil {
		cmd.Env = append(cmd.Environ(), c.Env()...)
	}
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Name, err)
	}
	p := &proc{cmd: cmd, started: time.Now(), up: make(chan struct{}), exited: make(chan struct{})}
	isUp := c.Up
	if isUp == nil {
		close(p.up)
	}
	var copying sync.WaitGroup
	copying.Go(func() {
		out.copy(c.Name, stdout, func(line string) {
			if isUp != nil && isUp(line) {
				isUp = nil
				close(p.up)
			}
		})
	})
	copying.Go(func() { errOut.copy(c.Name, stderr, nil) })
	// The pipes close when the child exits: the copies end, and then the
	// child is reaped.
	go func() {
		copying.Wait()
		_ = cmd.Wait()
		p.ended = time.Now()
		close(p.exited)
	}()
	return p, nil
}

// stop asks p to stop with SIGTERM, kills it if it has not within the
// grace period, and returns once it exited.
func (s *Supervisor) stop(p *proc, log *slog.Logger) {
	grace := s.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		log.Warn("could not signal", slog.Any("err", err))
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		log.Warn("did not stop in time; killing it", slog.Duration("grace", grace))
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	log.Info("stopped", slog.String("status", p.cmd.ProcessState.String()))
}

// lines writes whole lines to w, each prefixed with the name of the child
// that wrote it, aligned; a Write of one line never interleaves with
// another's.
type lines struct {
	mu    sync.Mutex
	w     io.Writer
	width int
}

// copy writes every line of r to l, prefixed with name, and passes each to
// seen (when not nil) until r ends.
func (l *lines) copy(name string, r io.Reader, seen func(line string)) {
	br := bufio.NewReader(r)
	prefix := fmt.Sprintf("%-*s | ", l.width, name)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			l.write([]byte(prefix + line))
			if seen != nil {
				seen(line[:len(line)-1])
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *lines) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

// whole is the supervisor's own writer to the children's stdout.
type whole struct{ l *lines }

func (w whole) Write(b []byte) (int, error) {
	w.l.write(b)
	return len(b), nil
}
