// Package lease elects one leader among replicas with a PostgreSQL advisory
// lock, so one reconciler at a time drives a remediation repository.
//
// The lease is a session-level advisory lock (pg_try_advisory_lock) taken on
// a dedicated connection — not one from a pool: a session lock belongs to
// the connection that took it, and a pool would hand that connection to
// other work. The key is a fixed class ("vzld") and a 32-bit FNV-1a hash of
// the name of what is led (the remediation repository URL, without
// credentials), so replicas of different repositories never contend.
//
// Why an advisory lock rather than a lease row with an expiry: the lock is
// released by the server the moment the holder's session ends. A holder that
// dies (SIGKILL, OOM, a crash) has its TCP connection closed by its kernel,
// the server ends the session at once, and a standby takes over at its next
// attempt — no waiting for an expiry, no clock comparisons between machines,
// no row to clean up. What a row would give — a lease surviving a database
// restart — is not wanted: after a restart every holder must re-elect.
//
// The lease time (Config.TTL) bounds the case the kernel cannot report: a
// holder cut off from the database (partition, frozen machine). Then:
//
//   - the holder checks the lock every TTL/3, each check bounded by TTL/3,
//     and gives the lease up (Lost) at most 2·TTL/3 after its last good
//     check;
//   - the server's TCP keepalives (idle TTL/2, then 3 probes TTL/6 apart,
//     rounded up to whole seconds) and tcp_user_timeout (TTL) end the
//     session, and so free the lock, no sooner than TTL after that check.
//
// So a cut-off holder has stepped down before the server frees the lock, and
// a standby, trying every TTL/5, leads within TTL + TTL/5 of the cut-off;
// after a holder's death it leads within TTL/5.
//
// The lease does not fence writes: a holder that stepped down may still be
// finishing a host step when it notices (the reconciler cancels in-flight
// commands and stops between steps). Host steps are recorded before and
// after they run, so the new leader resumes from the store, and patch
// scripts are idempotent by contract.
//
// It needs a real session: a connection pooler in transaction mode
// (PgBouncer pool_mode=transaction) breaks session-level advisory locks.
package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTTL is the lease time when Config.TTL is zero.
const DefaultTTL = 15 * time.Second

// Class is the first half of every lease's advisory-lock key ("vzld" in
// ASCII), so leases never collide with other advisory locks of the database
// (the store's migration lock uses the single-bigint key space).
const Class int32 = 0x767a6c64

// ErrHeld is returned by TryAcquire when another session holds the lease.
var ErrHeld = errors.New("lease is held by another replica")

// Config says what is led and how.
type Config struct {
	// URL is the PostgreSQL URL (a secret: never logged).
	URL string
	// Name is what is led, e.g. the remediation repository URL without
	// credentials. Only its hash reaches the database.
	Name string
	// TTL is the lease time (DefaultTTL when zero; at least a second): see
	// the package doc for what it bounds.
	TTL time.Duration
	// Holder names this replica in logs and in pg_stat_activity
	// (application_name "vulnzero-leader <holder>"), so an operator and a
	// standby can see who leads; "<hostname>:<pid>" when empty.
	Holder string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var problems []error
	if c.URL == "" {
		problems = append(problems, errors.New("database URL is required"))
	}
	if c.Name == "" {
		problems = append(problems, errors.New("name of what is led is required"))
	}
	if c.TTL != 0 && c.TTL < time.Second {
		problems = append(problems, fmt.Errorf("ttl %s is under a second", c.TTL))
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("lease config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		c.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// heartbeat is how often a holder checks its lock; each check is bounded by
// the same duration.
func (c Config) heartbeat() time.Duration { return c.TTL / 3 }

// retry is how often a standby tries to take the lease.
func (c Config) retry() time.Duration { return c.TTL / 5 }

// Key is the second half of the advisory-lock key for name: its 32-bit
// FNV-1a hash.
func Key(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32()) //nolint:gosec // G115: the hash is a bit pattern; wrapping is intended
}

// Lease is a held lease. Its connection is used only by the lease.
type Lease struct {
	cfg Config
	key int32
	log *slog.Logger

	mu   sync.Mutex // serializes use of conn
	conn *pgx.Conn

	lost     chan struct{}
	lostOnce sync.Once
	err      error // why it was lost; set before lost is closed

	stop chan struct{} // ends the heartbeat
	done chan struct{} // closed when the heartbeat has returned

	releaseOnce sync.Once
}

// TryAcquire connects and tries once to take the lease. It returns an error
// wrapping ErrHeld (and naming the holder when it can) when another session
// holds it.
func TryAcquire(ctx context.Context, cfg Config) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l, err := tryLock(ctx, cfg, conn)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return l, nil
}

// Acquire takes the lease, waiting as a standby — one attempt every TTL/5,
// on one connection, reconnecting when it breaks — until it gets the lease
// or ctx ends.
func Acquire(ctx context.Context, cfg Config) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("lease", keyString(Key(cfg.Name)), "holder", cfg.Holder)
	var (
		conn     *pgx.Conn
		lastWhy  string
		attempts int
	)
	closeConn := func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			conn = nil
		}
	}
	for {
		var err error
		if conn == nil {
			conn, err = connect(ctx, cfg)
		}
		if err == nil {
			var l *Lease
			l, err = tryLock(ctx, cfg, conn)
			if err == nil {
				if attempts > 0 {
					log.Info("lease acquired after standing by", "attempts", attempts+1)
				}
				return l, nil
			}
			if !errors.Is(err, ErrHeld) {
				closeConn() // the connection may be broken: start afresh
			}
		}
		if ctx.Err() != nil {
			closeConn()
			return nil, fmt.Errorf("acquire lease: %w", ctx.Err())
		}
		// Say so when the reason changes, not every attempt.
		if why := err.Error(); why != lastWhy {
			if errors.Is(err, ErrHeld) {
				log.Info("standing by", "reason", why, "retry", cfg.retry())
			} else {
				log.Warn("lease attempt", "err", err, "retry", cfg.retry())
			}
			lastWhy = why
		}
		attempts++
		t := time.NewTimer(cfg.retry())
		select {
		case <-ctx.Done():
			t.Stop()
			closeConn()
			return nil, fmt.Errorf("acquire lease: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// connect opens the lease's own connection with server-side keepalives that
// end a silent session no sooner than TTL after its last traffic.
func connect(ctx context.Context, cfg Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("lease: parse database URL: %w", err) // pgx does not echo the password
	}
	secs := func(d time.Duration) string { return strconv.Itoa(int((d + time.Second - 1) / time.Second)) }
	pc.RuntimeParams["application_name"] = "vulnzero-leader " + cfg.Holder
	pc.RuntimeParams["tcp_keepalives_idle"] = secs(cfg.TTL / 2)
	pc.RuntimeParams["tcp_keepalives_interval"] = secs(cfg.TTL / 6)
	pc.RuntimeParams["tcp_keepalives_count"] = "3"
	pc.RuntimeParams["tcp_user_timeout"] = strconv.FormatInt(cfg.TTL.Milliseconds(), 10)
	if pc.ConnectTimeout == 0 || pc.ConnectTimeout > cfg.TTL {
		pc.ConnectTimeout = cfg.TTL
	}
	where := fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database)
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("lease: connect to %s: %w", where, err)
	}
	return conn, nil
}

// tryLock makes one attempt on conn; on success the returned Lease owns conn
// and its heartbeat is running.
func tryLock(ctx context.Context, cfg Config, conn *pgx.Conn) (*Lease, error) {
	key := Key(cfg.Name)
	actx, cancel := context.WithTimeout(ctx, cfg.heartbeat())
	defer cancel()
	var ok bool
	if err := conn.QueryRow(actx, `SELECT pg_try_advisory_lock($1, $2)`, Class, key).Scan(&ok); err != nil {
		return nil, fmt.Errorf("lease %s: try lock: %w", keyString(key), err)
	}
	if !ok {
		if who := holder(actx, conn, key); who != "" {
			return nil, fmt.Errorf("lease %s: %w (%s)", keyString(key), ErrHeld, who)
		}
		return nil, fmt.Errorf("lease %s: %w", keyString(key), ErrHeld)
	}
	l := &Lease{cfg: cfg, key: key, log: cfg.Logger.With("lease", keyString(key), "holder", cfg.Holder), conn: conn,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	l.log.Info("lease acquired", "ttl", cfg.TTL)
	go l.heartbeat()
	return l, nil
}

// holder names the session holding key, from its application_name; empty
// when it cannot be read (best effort: it only makes the log clearer).
func holder(ctx context.Context, conn *pgx.Conn, key int32) string {
	var app string
	err := conn.QueryRow(ctx, `SELECT COALESCE(a.application_name, '')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
		  AND l.classid::bigint = $1 AND l.objid::bigint = $2
		LIMIT 1`, uint32(Class), uint32(key)).Scan(&app) //nolint:gosec // G115: pg_locks shows the key halves as unsigned oids
	if err != nil || app == "" {
		return ""
	}
	return "held by " + strconv.Quote(app)
}

func keyString(key int32) string { return fmt.Sprintf("%d/%d", Class, key) }

// Lost is closed when the lease can no longer be trusted: a check failed or
// timed out, the server no longer shows the lock as ours, or Release was
// called. Whoever acts as leader must stop when it closes.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err says why the lease was lost; nil while it is held.
func (l *Lease) Err() error {
	select {
	case <-l.lost:
		return l.err
	default:
		return nil
	}
}

func (l *Lease) lose(err error) {
	l.lostOnce.Do(func() {
		l.err = err
		close(l.lost)
	})
}

// heartbeat checks every TTL/3, within TTL/3, that the server still shows
// the lock as held by this session; the first failure loses the lease.
func (l *Lease) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.heartbeat())
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := l.check(); err != nil {
			l.log.Warn("lease lost", "err", err)
			l.lose(err)
			return
		}
	}
}

func (l *Lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.heartbeat())
	defer cancel()
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND pid = pg_backend_pid()
		  AND classid::bigint = $1 AND objid::bigint = $2)`,
		uint32(Class), uint32(l.key)).Scan(&held) //nolint:gosec // G115: pg_locks shows the key halves as unsigned oids
	switch {
	case err != nil:
		return fmt.Errorf("lease %s: check: %w", keyString(l.key), err)
	case !held:
		return fmt.Errorf("lease %s: check: the server no longer shows the lock held by this session", keyString(l.key))
	}
	return nil
}

// Release gives the lease up — unlocking and closing its connection, so a
// standby can take over at once — and closes Lost. Calling it again does
// nothing.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.releaseOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.lose(errors.New("released"))
		l.mu.Lock()
		defer l.mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, l.cfg.heartbeat())
		defer cancel()
		// Closing the session frees the lock anyway; unlocking first just
		// says so explicitly, and its error does not matter if the close
		// succeeds.
		_, uerr := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, Class, l.key)
		if cerr := l.conn.Close(ctx); cerr != nil {
			err = fmt.Errorf("lease %s: release: %w", keyString(l.key), errors.Join(uerr, cerr))
		}
		l.log.Info("lease released")
	})
	return err
}

// Run campaigns for the lease and, while holding it, calls lead with a
// context that is cancelled when the lease is lost. When lead returns
// because the lease was lost, Run releases what is left and campaigns
// again; when it returns for another reason, Run releases the lease and
// returns lead's error. Run returns nil when ctx ends.
//
// lead must return promptly once its context is cancelled: until it does,
// this replica may still be acting while another takes over.
func Run(ctx context.Context, cfg Config, lead func(ctx context.Context) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	for {
		l, err := Acquire(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			select {
			case <-l.Lost():
				cancel()
			case <-lctx.Done():
			}
		}()
		err = lead(lctx)
		lost := l.Err() != nil
		cancel()
		<-watch
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.heartbeat())
		if rerr := l.Release(rctx); rerr != nil && !lost {
			cfg.Logger.Warn("release lease", "err", rerr)
		}
		rcancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case lost:
			cfg.Logger.Warn("stepped down: lease lost; campaigning again", "err", l.err)
		default:
			return err
		}
	}
}
