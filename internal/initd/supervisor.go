package initd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// Options run a supervisor.
type Options struct {
	Source    Source
	LogFormat string // text or json
	Control   string // the control socket, overriding the config's; "none": none
	Log       *slog.Logger
	Stdout    io.Writer
	Stderr    io.Writer
}

// Process states.
const (
	stDown      = "down"      // not running: waiting for its dependencies, or stopped on purpose
	stStarting  = "starting"  // running, its ready check not passed yet
	stRunning   = "running"   // running (and ready)
	stBackoff   = "backoff"   // ended; restarted after a pause
	stStopping  = "stopping"  // asked to stop
	stExited    = "exited"    // ended for good
	stCompleted = "completed" // a oneshot that exited 0
	stFatal     = "fatal"     // restarted too often
)

// Supervisor runs the processes of a config. Its state is owned by one
// loop: every event (an exit, a check's result, a timer, a control call,
// a signal) is a function run there in turn.
type Supervisor struct {
	opt    Options
	log    *slog.Logger
	reaper *Reaper
	cfg    *Config
	procs  map[string]*proc
	events chan func()
	out    *sink
	errOut *sink
	null   *os.File
	ctx    context.Context
	cancel context.CancelFunc

	pumps     sync.WaitGroup // output readers: drained before exiting
	shutting  bool
	cleaning  bool   // the last step of the stop (what is left, then exit) has begun
	fatalCode int    // set when a required process failed for good
	lastOwn   string // the last process to exit on its own
	ownCode   int    // and the code it exited with then
	finished  chan struct{}
	// gated: a cluster member that has not applied its first released
	// epoch; no process starts, and having none running is no reason to
	// exit.
	gated   bool
	members sync.WaitGroup // the cluster member's poller
}

type proc struct {
	name     string
	spec     *Process
	state    string
	pid      int
	gen      int // bumped at each start: events of an older run are dropped
	started  time.Time
	restarts int
	recent   []time.Time // restarts within the window
	backoff  time.Duration
	last     *Status
	lastAt   time.Time
	ready    bool
	healthy  bool

	held        bool // stopped or kept down on purpose (ctl stop, a down file): not started until asked
	again       bool // start again once stopped (ctl restart, a changed config)
	removed     bool // gone from the config: forgotten once stopped
	next        *Process
	stopT       *time.Timer
	retry       *time.Timer
	checks      context.CancelFunc
	ring        *ring
	logW        *os.File // a runit service with a log service: its stdout goes here
	logR        *os.File // the log service's stdin
	finishing   bool
	checkFailed bool // stopped because a check failed: a failure, not a stop asked for
}

// Supervise runs the source's processes until they are done or ganger-init
// is told to stop, and returns the exit code to leave with.
func Supervise(opt Options) int {
	opt.Source.keep()
	cfg, err := opt.Source.Load()
	if err != nil {
		fmt.Fprintln(opt.Stderr, "ganger-init:", err)
		return 2
	}
	s := &Supervisor{opt: opt, log: opt.Log, cfg: cfg, procs: map[string]*proc{}, events: make(chan func(), 64),
		out: &sink{w: opt.Stdout, json: opt.LogFormat == "json"}, errOut: &sink{w: opt.Stderr, json: opt.LogFormat == "json"},
		finished: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.cancel()
	if err := Subreaper(); err != nil {
		s.log.Debug("not a subreaper", "err", err)
	}
	if s.null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
		fmt.Fprintln(opt.Stderr, "ganger-init:", err)
		return 2
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	s.reaper = NewReaper()
	defer s.reaper.Stop()
	stopControl := s.serveControl()
	defer stopControl()
	if cfg.Cluster != nil {
		m := newMember(s)
		s.gated = true
		s.members.Go(func() { m.run(s.ctx) })
		defer s.members.Wait() // s.ctx is cancelled once everything stopped
	} else if len(cfg.Files) > 0 || cfg.OnChange != nil {
		s.log.Warn("files and on_change are for cluster members (cluster, or GANGER_CLUSTER_API): ignored")
	}

	for _, name := range slices.Sorted(maps.Keys(cfg.Processes)) {
		s.add(name, cfg.Processes[name])
	}
	s.log.Info("starting", "processes", len(s.procs), "pid", os.Getpid())
	s.schedule()
	s.checkDone()
	for {
		select {
		case f := <-s.events:
			f()
		case sig := <-sigs:
			s.signal(sig.(syscall.Signal))
		case <-s.finished:
			s.drain()
			code := s.exitCode()
			s.log.Info("exiting", "code", code, "orphans_reaped", s.reaper.Orphans())
			return code
		}
	}
}

// drain waits for the processes' last lines to be written (every process
// is gone: their pipes are closing), a few seconds at most.
func (s *Supervisor) drain() {
	done := make(chan struct{})
	go func() { s.pumps.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		s.log.Warn("output still open after every process ended; not waiting for it")
	}
}

// post runs f in the loop.
func (s *Supervisor) post(f func()) {
	select {
	case s.events <- f:
	case <-s.finished:
	}
}

// call runs f in the loop and waits for it (the control interface).
func (s *Supervisor) call(f func()) bool {
	done := make(chan struct{})
	select {
	case s.events <- func() { f(); close(done) }:
	case <-s.finished:
		return false
	}
	select {
	case <-done:
		return true
	case <-s.finished:
		return false
	}
}

func (s *Supervisor) add(name string, spec *Process) *proc {
	p := &proc{name: name, spec: spec, state: stDown, backoff: spec.Backoff.Initial, ring: &ring{}, held: spec.down}
	s.procs[name] = p
	if spec.logOf != "" {
		if src := s.procs[spec.logOf]; src != nil {
			s.pipeLog(src, p)
		}
	}
	for _, q := range s.procs {
		if q.spec.logOf == name {
			s.pipeLog(p, q)
		}
	}
	return p
}

// pipeLog feeds src's stdout to its runit log service, through one pipe
// that outlives their restarts.
func (s *Supervisor) pipeLog(src, logger *proc) {
	if src.logW != nil {
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		s.log.Error("cannot make a log pipe", "process", src.name, "err", err)
		return
	}
	src.logW, logger.logR = w, r
}

// signal handles a signal to ganger-init: TERM, INT and QUIT stop
// everything; HUP reloads; others go to the main processes (to every
// process when none is main).
func (s *Supervisor) signal(sig syscall.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
		s.log.Info("stopping", "signal", signalName(sig))
		s.shutdown()
	case syscall.SIGHUP:
		if r, err := s.reload(); err != nil {
			s.log.Error("reload refused", "err", err)
		} else {
			s.log.Info("reloaded", "added", r.Added, "removed", r.Removed, "restarted", r.Restarted)
		}
	default:
		mains := 0
		for _, p := range s.procs {
			if p.spec.Main && p.pid > 0 {
				syscall.Kill(-p.pid, sig)
				mains++
			}
		}
		if mains == 0 {
			for _, p := range s.procs {
				if p.pid > 0 {
					syscall.Kill(-p.pid, sig)
				}
			}
		}
	}
}

// met reports whether p meets a dependency condition.
func (p *proc) met(cond string) bool {
	if p.state == stCompleted {
		return true
	}
	up := p.state == stRunning || p.state == stStarting
	switch cond {
	case "started":
		return up
	case "ready":
		return p.state == stRunning
	case "healthy":
		return p.state == stRunning && (p.spec.Health == nil || p.healthy)
	}
	return false // completed: only stCompleted
}

// final reports whether p ended and will not run again by itself.
func (p *proc) final() bool {
	return p.state == stExited || p.state == stCompleted || p.state == stFatal
}

// schedule starts every process whose turn has come.
func (s *Supervisor) schedule() {
	if s.shutting || s.gated {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(s.procs)) {
		p := s.procs[name]
		if s.shutting {
			return // a failed start just stopped everything
		}
		if p.state != stDown || p.held || p.removed {
			continue
		}
		ok := true
		for _, a := range p.spec.After {
			if d := s.procs[a.Process]; d == nil || !d.met(a.Condition) {
				ok = false
			}
		}
		if ok {
			s.start(p)
		}
	}
}

// blocked reports whether a down process can never start: one of its
// dependencies ended for good without meeting its condition.
func (s *Supervisor) blocked(p *proc) bool {
	for _, a := range p.spec.After {
		d := s.procs[a.Process]
		if d == nil || (d.final() && !d.met(a.Condition)) || s.blocked(d) && d.state == stDown {
			return true
		}
	}
	return false
}

// start starts p now.
func (s *Supervisor) start(p *proc) {
	spec := p.spec
	p.gen++
	gen := p.gen
	p.ready, p.healthy = false, false
	pid, done, err := s.spawn(p)
	if err != nil {
		s.log.Error("cannot start", "process", p.name, "err", err)
		p.started = time.Now()
		p.state = stRunning
		go s.post(func() { s.exited(p, gen, Status{Code: 127}) }) // in turn, like any exit
		return
	}
	p.pid, p.started = pid, time.Now()
	p.state = stRunning
	if spec.Ready != nil {
		p.state = stStarting
	}
	s.log.Info("started", "process", p.name, "pid", pid)
	go func() {
		st := <-done
		s.post(func() { s.exited(p, gen, st) })
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	p.checks = cancel
	if spec.Ready != nil || spec.Health != nil {
		go s.watch(ctx, p, gen, spec)
	}
}

// spawn forks p's command with its output piped to ganger-init's (or to
// its log service).
func (s *Supervisor) spawn(p *proc) (int, <-chan Status, error) {
	spec := p.spec
	path := spec.Cmd[0]
	if !filepathIsAbs(path) {
		var err error
		if path, err = exec.LookPath(path); err != nil {
			return 0, nil, err
		}
	}
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if spec.User != "" {
		cred, err := credential(spec.User, "/etc")
		if err != nil {
			return 0, nil, err
		}
		sys.Credential = cred
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, nil, err
	}
	stdin, stdout := s.null, outW
	if p.logR != nil {
		stdin = p.logR
	}
	if p.logW != nil {
		stdout = p.logW
	}
	pid, done, err := s.reaper.Start(path, spec.Cmd, &syscall.ProcAttr{Dir: spec.Dir, Env: env,
		Files: []uintptr{stdin.Fd(), stdout.Fd(), errW.Fd()}, Sys: sys})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return 0, nil, err
	}
	s.pumps.Go(func() { pump(outR, s.out, p.name, "stdout", p.ring); outR.Close() })
	s.pumps.Go(func() { pump(errR, s.errOut, p.name, "stderr", p.ring); errR.Close() })
	return pid, done, nil
}

func filepathIsAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

// watch runs p's ready check until it passes (or its time is up), then
// its health check for as long as the run lasts.
func (s *Supervisor) watch(ctx context.Context, p *proc, gen int, spec *Process) {
	if c := spec.Ready; c != nil {
		deadline := time.Now().Add(c.Within)
		for {
			if err := s.probe(ctx, c); err == nil {
				s.post(func() { s.readied(p, gen) })
				break
			} else if time.Now().After(deadline) {
				s.post(func() { s.failedCheck(p, gen, fmt.Sprintf("not ready within %s: %v", c.Within, err)) })
				return
			}
			if !sleep(ctx, c.Interval) {
				return
			}
		}
	}
	c := spec.Health
	if c == nil {
		return
	}
	failures := 0
	for sleep(ctx, c.Interval) {
		err := s.probe(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			s.post(func() {
				if p.gen == gen && !p.healthy {
					p.healthy = true
					s.log.Info("healthy", "process", p.name)
					s.schedule()
				}
			})
			continue
		}
		failures++
		if failures >= c.Failures {
			s.post(func() { s.failedCheck(p, gen, fmt.Sprintf("unhealthy: %d checks in a row failed: %v", failures, err)) })
			return
		}
	}
}

func (s *Supervisor) readied(p *proc, gen int) {
	if p.gen != gen || p.state != stStarting {
		return
	}
	p.ready, p.state = true, stRunning
	s.log.Info("ready", "process", p.name)
	s.schedule()
}

// failedCheck stops a process whose check failed; its restart policy
// then applies as to any failure.
func (s *Supervisor) failedCheck(p *proc, gen int, why string) {
	if p.gen != gen || p.pid == 0 || p.state == stStopping {
		return
	}
	s.log.Warn("check failed: stopping it", "process", p.name, "why", why)
	p.checkFailed = true
	s.stop(p, false)
}

// exited is the end of one run of p.
func (s *Supervisor) exited(p *proc, gen int, st Status) {
	if p.gen != gen {
		return
	}
	if p.checks != nil {
		p.checks()
	}
	if p.stopT != nil {
		p.stopT.Stop()
	}
	asked := p.state == stStopping && !p.checkFailed
	failedCheck := p.checkFailed
	p.checkFailed = false
	p.pid, p.last, p.lastAt = 0, &st, time.Now()
	if failedCheck && st.OK() {
		st = Status{Code: 1} // a failed check is a failure, whatever the code
	}
	s.log.Info("exited", "process", p.name, "status", st.String(), "asked", asked)
	if p.spec.finish != "" && !p.finishing {
		p.finishing = true
		go s.runFinish(p, gen, st, asked)
		return
	}
	s.afterExit(p, st, asked)
}

// runFinish runs a runit finish script with the exit code and signal, as
// runsv does (-1 as the code when a signal killed it), then goes on.
func (s *Supervisor) runFinish(p *proc, gen int, st Status, asked bool) {
	code, sig := strconv.Itoa(st.Code), "0"
	if st.Signaled {
		code, sig = "-1", strconv.Itoa(int(st.Signal))
	}
	ctx, cancel := context.WithTimeout(s.ctx, p.spec.Stop.Timeout)
	defer cancel()
	s.runScript(ctx, p, []string{p.spec.finish, code, sig})
	s.post(func() {
		p.finishing = false
		if p.gen == gen {
			s.afterExit(p, st, asked)
		}
	})
}

// runScript runs argv in p's directory with p's output, through the reaper.
func (s *Supervisor) runScript(ctx context.Context, p *proc, argv []string) {
	q := &proc{name: p.name, spec: &Process{Cmd: argv, Dir: p.spec.Dir, Env: p.spec.Env, User: p.spec.User}, ring: p.ring}
	pid, done, err := s.spawn(q)
	if err != nil {
		s.log.Warn("cannot run", "script", argv[0], "err", err)
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

func (s *Supervisor) afterExit(p *proc, st Status, asked bool) {
	if p.removed && s.procs[p.name] == p && !asked && !s.shutting {
		p.state = stDown // gone from the config while it ran its finish script
		delete(s.procs, p.name)
		s.closeLog(p)
		s.schedule()
		s.checkDone()
		return
	}
	if asked || s.shutting {
		p.state = stDown
		if p.removed {
			if s.procs[p.name] == p {
				delete(s.procs, p.name)
			}
			s.closeLog(p)
		} else if p.next != nil {
			p.spec, p.next = p.next, nil
			p.backoff = p.spec.Backoff.Initial
		}
		if s.shutting {
			s.stopNext()
			return
		}
		if p.again {
			p.again, p.held = false, false
		}
		s.schedule()
		s.checkDone()
		return
	}
	s.lastOwn, s.ownCode = p.name, st.ExitCode()
	spec := p.spec
	switch {
	case spec.Oneshot && st.OK():
		p.state = stCompleted
		s.log.Info("completed", "process", p.name)
	case spec.Restart == "always" || spec.Restart == "on-failure" && !st.OK():
		now := time.Now()
		p.recent = slices.DeleteFunc(p.recent, func(t time.Time) bool { return now.Sub(t) > spec.RestartWindow })
		if spec.MaxRestarts > 0 && len(p.recent) >= spec.MaxRestarts {
			p.state = stFatal
			s.log.Error("restarted too often: fatal", "process", p.name, "restarts", len(p.recent), "window", spec.RestartWindow)
			break
		}
		if now.Sub(p.started) >= spec.Backoff.Max {
			p.backoff = spec.Backoff.Initial // a stable run
		}
		delay := p.backoff
		p.backoff = min(2*p.backoff, spec.Backoff.Max)
		p.recent = append(p.recent, now)
		p.restarts++
		p.state = stBackoff
		s.log.Info("restarting", "process", p.name, "in", delay)
		gen := p.gen
		p.retry = time.AfterFunc(delay, func() {
			s.post(func() {
				if p.state == stBackoff && p.gen == gen {
					p.state = stDown
					s.schedule()
					s.checkDone()
				}
			})
		})
		return
	default:
		p.state = stExited
	}
	failed := p.state == stFatal || p.state == stExited && !st.OK()
	switch {
	case spec.Required && failed:
		s.fatalCode = st.ExitCode()
		if s.fatalCode == 0 {
			s.fatalCode = 1
		}
		s.log.Error("a required process failed for good: stopping everything", "process", p.name)
		s.shutdown()
	case spec.Main:
		s.log.Info("a main process ended: stopping everything", "process", p.name)
		s.shutdown()
	default:
		s.schedule()
		s.checkDone()
	}
}

// checkDone stops ganger-init once nothing runs or will: no process is
// running, restarting or able to start, and none is held down by the
// operator (it may be started again).
func (s *Supervisor) checkDone() {
	if s.shutting || s.gated {
		return
	}
	for _, p := range s.procs {
		switch {
		case p.held && !p.final():
			return
		case p.state == stDown && !s.blocked(p):
			return
		case p.state == stStarting || p.state == stRunning || p.state == stBackoff || p.state == stStopping || p.finishing:
			return
		}
	}
	s.log.Info("every process ended")
	s.shutdown()
}

// shutdown stops every process in reverse dependency order, then whatever
// is left, and ends the loop.
func (s *Supervisor) shutdown() {
	if s.shutting {
		return
	}
	s.shutting = true
	for _, p := range s.procs {
		if p.retry != nil {
			p.retry.Stop()
		}
		if p.state == stBackoff {
			p.state = stDown
		}
	}
	s.stopNext()
}

// stopNext stops each running process that no running process depends on;
// once none runs, the rest of the container goes.
func (s *Supervisor) stopNext() {
	running := 0
	for _, name := range slices.Sorted(maps.Keys(s.procs)) {
		p := s.procs[name]
		if p.pid == 0 && !p.finishing {
			continue
		}
		running++
		if p.state == stStopping || p.finishing {
			continue
		}
		if !s.dependedOn(p) {
			s.stop(p, false)
		}
	}
	if running == 0 && !s.cleaning {
		s.cleaning = true // once: a late exit comes back here
		s.cancel()
		go func() {
			cleanUp(s.reaper, s.cfg.ShutdownGrace, s.log)
			close(s.finished)
		}()
	}
}

// dependedOn reports whether a running process waits on p.
func (s *Supervisor) dependedOn(p *proc) bool {
	for _, q := range s.procs {
		if q.pid == 0 && !q.finishing {
			continue
		}
		for _, a := range q.spec.After {
			if a.Process == p.name {
				return true
			}
		}
		if q.spec.logOf == "" && p.spec.logOf == q.name {
			return true // a log service stops after its service
		}
	}
	return false
}

// stop asks p to stop: its stop signal (and CONT) to its process group,
// KILL after its timeout.
func (s *Supervisor) stop(p *proc, again bool) {
	if p.pid == 0 {
		return
	}
	if p.checks != nil {
		p.checks()
	}
	p.again = again
	p.state = stStopping
	gen, pid := p.gen, p.pid
	if src := s.procs[p.spec.logOf]; s.shutting && src != nil && src.pid == 0 && src.logW != nil {
		// A runit log service at shutdown, its service stopped: as runsv
		// does, the end of its input tells it to go, once it has written
		// what the service wrote last. KILL after its timeout all the same.
		s.log.Info("stopping", "process", p.name, "how", "end of its input", "timeout", p.spec.Stop.Timeout)
		src.logW.Close()
		src.logW = nil
	} else {
		sig := signalOf(p.spec.Stop.Signal)
		s.log.Info("stopping", "process", p.name, "signal", signalName(sig), "timeout", p.spec.Stop.Timeout)
		syscall.Kill(-p.pid, sig)
		syscall.Kill(-p.pid, syscall.SIGCONT)
	}
	p.stopT = time.AfterFunc(p.spec.Stop.Timeout, func() {
		s.post(func() {
			if p.gen == gen && p.pid == pid {
				s.log.Warn("did not stop in time: killing it", "process", p.name, "timeout", p.spec.Stop.Timeout)
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		})
	})
}

func (s *Supervisor) closeLog(p *proc) {
	if p.logW != nil {
		p.logW.Close()
	}
	if p.logR != nil {
		p.logR.Close()
	}
}

// exitCode is what ganger-init leaves with: a required process's failure;
// else exit_code_from's last code; else the first main process's; else
// the last process to exit on its own; else 0.
func (s *Supervisor) exitCode() int {
	if s.fatalCode != 0 {
		return s.fatalCode
	}
	from := s.cfg.ExitCodeFrom
	if from == "" {
		for _, name := range slices.Sorted(maps.Keys(s.procs)) {
			if s.procs[name].spec.Main {
				from = name
				break
			}
		}
	}
	if from == "" && s.lastOwn != "" {
		// Its code when it exited on its own, not at the shutdown that
		// followed its restart.
		return s.ownCode
	}
	if p := s.procs[from]; p != nil && p.last != nil {
		return p.last.ExitCode()
	}
	return 0
}

// view is p as the control interface shows it.
func (p *proc) view() initproto.Process {
	v := initproto.Process{Name: p.name, State: p.state, PID: p.pid, Restarts: p.restarts,
		Ready: p.state == stRunning || p.state == stCompleted, Healthy: p.healthy || p.spec.Health == nil && p.state == stRunning,
		Main: p.spec.Main, Required: p.spec.Required}
	if p.pid > 0 {
		t := p.started
		v.StartedAt, v.Uptime = &t, time.Since(t).Seconds()
	}
	if p.last != nil {
		v.LastExit = &initproto.Exit{Code: p.last.ExitCode(), At: p.lastAt}
		if p.last.Signaled {
			v.LastExit.Signal = signalName(p.last.Signal)
		}
	}
	return v
}

// reload reads the config again: new processes start, removed ones stop,
// changed ones restart; the others are not touched.
func (s *Supervisor) reload() (initproto.Reload, error) {
	var r initproto.Reload
	if s.shutting {
		return r, fmt.Errorf("stopping")
	}
	cfg, err := s.opt.Source.Load()
	if err != nil {
		return r, err
	}
	s.cfg.ShutdownGrace, s.cfg.ExitCodeFrom = cfg.ShutdownGrace, cfg.ExitCodeFrom
	for _, name := range slices.Sorted(maps.Keys(s.procs)) {
		p := s.procs[name]
		spec, ok := cfg.Processes[name]
		switch {
		case ok && p.removed:
			// Removed by an earlier reload, back before it stopped.
			r.Added = append(r.Added, name)
			p.removed, p.held = false, false
			if p.pid > 0 || p.finishing {
				p.next, p.again = spec, true
			} else {
				p.spec, p.backoff, p.restarts, p.recent, p.state = spec, spec.Backoff.Initial, 0, nil, stDown
			}
		case !ok && p.removed:
		case !ok:
			r.Removed = append(r.Removed, name)
			p.removed, p.held = true, true
			if p.retry != nil {
				p.retry.Stop()
			}
			switch {
			case p.pid > 0:
				s.stop(p, false)
			case p.finishing: // its finish script ends it
			default:
				delete(s.procs, name)
				s.closeLog(p)
			}
		case !reflect.DeepEqual(*spec, *p.spec) && !reflect.DeepEqual(*spec, ptrOr(p.next)):
			r.Restarted = append(r.Restarted, name)
			if p.pid > 0 {
				p.next = spec
				s.stop(p, true)
			} else {
				p.spec, p.backoff, p.restarts, p.recent = spec, spec.Backoff.Initial, 0, nil
				if p.final() {
					p.state = stDown
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Processes)) {
		if s.procs[name] == nil {
			r.Added = append(r.Added, name)
			s.add(name, cfg.Processes[name])
		}
	}
	s.schedule()
	return r, nil
}

func ptrOr(p *Process) Process {
	if p == nil {
		return Process{}
	}
	return *p
}

func sortedNames(m map[string]*proc) []string { return slices.Sorted(maps.Keys(m)) }

func killGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }
