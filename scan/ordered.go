package scan

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// ordered runs the expensive part of a parse (decoding the entries of a
// report) on the other cores while the parser reads on, and hands the
// results back in the order they were submitted. A parser that splits its
// input into batches therefore emits exactly what it would have emitted
// alone: the same findings in the same order, and the same first error.
//
// All of its methods are called from the parser's goroutine, which is also
// where every result is consumed (the consumer's emit is not safe to call
// from anywhere else). Only the run functions go to other goroutines, so
// they must touch nothing the parser goroutine writes.
type ordered struct {
	work    chan *orderedTask
	pending []*orderedTask // submitted, not yet consumed; oldest first
	limit   int            // batches in flight before submit waits
	workers sync.WaitGroup
	started bool
	inline  bool        // one CPU: run each batch at once, in place
	stopped atomic.Bool // a consumer failed or the parse is over: skip what is queued
	err     error       // the first consumer error; sticky
}

// orderedTask is one batch: run on a worker, then the function it returned
// runs on the parser goroutine, in submission order.
type orderedTask struct {
	run  func() func() error
	then func() error
	done chan struct{}
}

// batchSize is how many entries a parser puts in one batch: enough to
// make a batch's hand-off cheap against its decoding, few enough that
// memory stays flat. Tests lower it to cross batch boundaries often.
var batchSize = 64

func newOrdered() *ordered {
	n := runtime.GOMAXPROCS(0)
	return &ordered{inline: n < 2, limit: 4 * n}
}

func (o *ordered) start() {
	o.started = true
	// One worker per core besides the parser's: the parser runs batches
	// itself whenever it would otherwise wait, so every core stays busy
	// without goroutines taking turns on one.
	n := max(1, runtime.GOMAXPROCS(0)-1)
	o.work = make(chan *orderedTask, o.limit+1)
	o.workers.Add(n)
	for range n {
		go func() {
			defer o.workers.Done()
			for t := range o.work {
				o.runTask(t)
			}
		}()
	}
}

func (o *ordered) runTask(t *orderedTask) {
	defer close(t.done)
	if o.stopped.Load() {
		return
	}
	// A parser bug must not take the process down from a goroutine nobody
	// can recover in: the batch fails, in order, like a bad input would.
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("scan: internal error parsing a batch: %v\n%s", r, debug.Stack())
			t.then = func() error { return err }
		}
	}()
	t.then = t.run()
}

// submit queues run on a worker. What run returns is called later on this
// goroutine, after everything submitted before it. It returns the first
// error a consumed batch returned, after which nothing more is run.
func (o *ordered) submit(run func() func() error) error {
	if o.err != nil {
		return o.err
	}
	if o.inline {
		return o.consumed(run()())
	}
	if !o.started {
		o.start()
	}
	t := &orderedTask{run: run, done: make(chan struct{})}
	o.pending = append(o.pending, t)
	o.work <- t
	for len(o.pending) > o.limit {
		if err := o.consumeOldest(); err != nil {
			return err
		}
	}
	return o.err
}

// then runs fn on this goroutine once everything submitted before it has
// been consumed: a coverage callback or a finding the parser produced
// itself, kept in order with the batches around it.
func (o *ordered) then(fn func() error) error {
	if o.err != nil {
		return o.err
	}
	if len(o.pending) == 0 {
		return o.consumed(fn())
	}
	t := &orderedTask{then: fn, done: make(chan struct{})}
	close(t.done)
	o.pending = append(o.pending, t)
	for len(o.pending) > o.limit {
		if err := o.consumeOldest(); err != nil {
			return err
		}
	}
	return nil
}

// flush consumes everything submitted so far.
func (o *ordered) flush() error {
	for len(o.pending) > 0 && o.err == nil {
		if err := o.consumeOldest(); err != nil {
			return err
		}
	}
	return o.err
}

// finish flushes and returns the first error: err (the parser's own) only
// when every batch before it went through, since those come first in the
// input. It stops the workers; the ordered cannot be used after it.
func (o *ordered) finish(err error) error {
	if ferr := o.flush(); ferr != nil {
		err = ferr
	}
	o.close()
	return err
}

// close stops the workers, dropping whatever is still queued.
func (o *ordered) close() {
	o.stopped.Store(true)
	if o.started {
		close(o.work)
		o.workers.Wait()
		o.started = false
	}
	o.pending = nil
}

func (o *ordered) consumed(err error) error {
	if err != nil && o.err == nil {
		o.err = err
		o.stopped.Store(true)
	}
	return err
}

// consumeOldest waits for the oldest batch, running queued batches itself
// meanwhile rather than sit idle, and consumes it.
func (o *ordered) consumeOldest() error {
	t := o.pending[0]
	for waiting := true; waiting; {
		select {
		case <-t.done:
			waiting = false
		default:
			select {
			case <-t.done:
				waiting = false
			case u := <-o.work:
				o.runTask(u)
			}
		}
	}
	o.pending[0] = nil
	o.pending = o.pending[1:]
	if t.then == nil {
		return o.err // skipped after a failure
	}
	return o.consumed(t.then())
}

// buffers recycles the byte buffers batches copy their input into: a
// parse moves the whole report through them, and fresh ones for every
// batch would have the garbage collector run a thousand times a gigabyte.
var buffers sync.Pool

// getBuffer returns a buffer of n bytes with unspecified contents.
func getBuffer(n int) []byte {
	if p, ok := buffers.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, max(n, 256<<10))
}

// putBuffer gives b back once nothing refers to it any more.
func putBuffer(b []byte) {
	buffers.Put(&b)
}
