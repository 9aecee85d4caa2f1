"""The thread pool behind ``@lt.kernel(parallel=True)``: pthreads driven by LLVM-generated code.

A small module of LLVM IR (:data:`RUNTIME_IR`), compiled once per process (and kept in the disk
cache), exports

* ``i32 lt_parallel_for(ptr fn, ptr ctx, i64 n_chunks)``: runs ``fn(ctx, chunk, n_chunks)`` for
  every chunk in ``[0, n_chunks)``, on the calling thread and the pool's workers, and returns
  the status of the lowest-numbered chunk that failed (0 if none).  The calling thread takes
  chunks too.  A second caller while the pool is busy (another Python thread: kernels release
  the GIL), and any call with one thread or one chunk, runs the chunks in order on the calling
  thread, stopping at the first failure.
* ``i64 lt_par_chunks(i64 work, i64 n)``: how many chunks to split a loop of ``n`` outer
  iterations and about ``work`` operations into: 1 below :data:`THRESHOLD`, else
  ``min(n, work / GRAIN, MAX_CHUNKS)``.  The count depends only on the sizes, never on the
  thread count nor on timing, so per-chunk partial results combined in chunk order give the
  same bits on every run and with any number of threads (one thread runs the chunks in order).
* ``i64 lt_par_get_jobs()``: how many jobs were handed to the workers so far (a loop run on
  the calling thread alone is not counted); :func:`jobs_run` reads it.
* ``lt_par_start(i64 threads)`` (called from Python): sets the number of threads taking part
  and starts workers up to ``threads - 1``.  Workers are detached threads that poll for the
  next job for about 0.1 ms (:data:`SPIN_TICKS`) after each one, then sleep on a condition
  variable; workers numbered at or above ``threads - 1`` sit out (asleep).

Synchronisation: a job is handed out without a lock (see the comment above
:data:`RUNTIME_IR`): the caller publishes it by bumping a generation counter, workers register
in an atomic count of participants, chunks are handed out by an atomic counter and counted
when finished; the caller returns once every chunk is finished, and a new job waits until every
participant of the previous one has checked out, so no late worker can run an old function on a
new chunk index.  The mutex and condition variables serve only sleeping
and waking.

Thread count: ``LATTICE_NUM_THREADS`` (read when first needed), else the CPUs this process may
run on; :func:`set_num_threads` changes it at any time.  This module imports no llvmlite until
the runtime is needed, so ``import lattice`` stays cheap.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
from typing import Any, Callable, Optional

__all__ = ["set_num_threads", "get_num_threads", "ensure_runtime", "jobs_run", "THRESHOLD",
           "GRAIN", "MAX_CHUNKS", "MAX_THREADS"]

#: Loops of fewer operations than this run on the calling thread in one chunk: handing a job
#: to the workers costs a few microseconds when they poll, tens when they sleep (see
#: docs/performance.md for the measured break-even).
THRESHOLD = 1 << 17
#: Operations per chunk above the threshold: chunks small enough for an uneven share of the
#: work between busy and idle cores, large enough that taking one costs nothing measurable.
GRAIN = 1 << 14
#: Upper bound on chunks (partial-result buffers live on the stack).
MAX_CHUNKS = 256
MAX_THREADS = 64
#: How long an idle thread polls for the next job before it sleeps on a condition variable
#: (x86: time-stamp-counter ticks, about 0.1 ms; elsewhere: polls).  Back-to-back parallel loops
#: then start without a wake-up through the kernel, which costs tens of microseconds in a VM
#: and lets the scheduler move the woken thread onto the waker's CPU.
SPIN_TICKS = 1 << 18
SPIN_POLLS = 1 << 16

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

# Spinning: ``lt_par_spin_start`` and ``lt_par_keep_spinning(start, polls)``.  On x86 the
# budget is time (rdtsc) and each poll pauses; elsewhere it is a number of polls.  (Polls do
# not yield the CPU: on a machine busy with other processes, a yielding thread gives its CPU
# away for a whole time slice, and the job runs on the caller alone.)
if _X86:
    _SPIN_IR = """
declare i64 @llvm.readcyclecounter()
declare void @llvm.x86.sse2.pause()
define internal i64 @lt_par_spin_start() alwaysinline {
  %t = call i64 @llvm.readcyclecounter()
  ret i64 %t
}
define internal i1 @lt_par_keep_spinning(i64 %start, i64 %polls) alwaysinline {
  call void @llvm.x86.sse2.pause()
  %t = call i64 @llvm.readcyclecounter()
  %el = sub i64 %t, %start
  %more = icmp ult i64 %el, SPIN_TICKS
  ret i1 %more
}
""".replace("SPIN_TICKS", str(SPIN_TICKS))
else:
    _SPIN_IR = """
define internal i64 @lt_par_spin_start() alwaysinline {
  ret i64 0
}
define internal i1 @lt_par_keep_spinning(i64 %start, i64 %polls) alwaysinline {
  %more = icmp slt i64 %polls, SPIN_POLLS
  ret i1 %more
}
""".replace("SPIN_POLLS", str(SPIN_POLLS))


# Spreading: a worker that joins a job on the CPU its caller published it from cannot help
# (one of the two waits while the other runs), and the scheduler rarely separates them when
# the other CPUs are busy with other processes: a thread woken by another is placed on the
# waker's CPU unless its previous CPU is idle.  Such a worker moves itself off that CPU (its
# affinity without the caller's CPU, then the old affinity again: it stays where it landed).
# Linux only; elsewhere ``lt_par_cpu`` is -1 and nothing moves.
if platform.system() == "Linux":
    _SPREAD_IR = """
declare i32 @sched_getcpu()
declare i32 @sched_getaffinity(i32, i64, ptr)
declare i32 @sched_setaffinity(i32, i64, ptr)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
define internal i32 @lt_par_cpu() {
  %c = call i32 @sched_getcpu()
  ret i32 %c
}
define internal void @lt_par_move_off(i32 %cpu) {
entry:
  %old = alloca [16 x i64], align 8
  %new = alloca [16 x i64], align 8
  %rc = call i32 @sched_getaffinity(i32 0, i64 128, ptr %old)
  %ok = icmp eq i32 %rc, 0
  %inrange = icmp ult i32 %cpu, 1024
  %go = and i1 %ok, %inrange
  br i1 %go, label %clear, label %out
clear:
  call void @llvm.memcpy.p0.p0.i64(ptr %new, ptr %old, i64 128, i1 false)
  %word = lshr i32 %cpu, 6
  %wi = zext i32 %word to i64
  %p = getelementptr i64, ptr %new, i64 %wi
  %v = load i64, ptr %p
  %bit = and i32 %cpu, 63
  %b64 = zext i32 %bit to i64
  %m = shl i64 1, %b64
  %nm = xor i64 %m, -1
  %v2 = and i64 %v, %nm
  store i64 %v2, ptr %p
  br label %scan
scan:                                   ; is any other CPU allowed?
  %k = phi i64 [ 0, %clear ], [ %k1, %scan ]
  %acc = phi i64 [ 0, %clear ], [ %acc1, %scan ]
  %q = getelementptr i64, ptr %new, i64 %k
  %w = load i64, ptr %q
  %acc1 = or i64 %acc, %w
  %k1 = add i64 %k, 1
  %more = icmp ult i64 %k1, 16
  br i1 %more, label %scan, label %scanned
scanned:
  %other = icmp ne i64 %acc1, 0
  br i1 %other, label %move, label %out
move:
  %r1 = call i32 @sched_setaffinity(i32 0, i64 128, ptr %new)
  %r2 = call i32 @sched_setaffinity(i32 0, i64 128, ptr %old)
  br label %out
out:
  ret void
}
"""
else:
    _SPREAD_IR = """
define internal i32 @lt_par_cpu() {
  ret i32 -1
}
define internal void @lt_par_move_off(i32 %cpu) {
  ret void
}
"""

# The pool's state is in globals with external linkage on purpose: for an internal global
# whose address never escapes, LLVM may assume an external call (pthread_cond_wait) leaves it
# unchanged and hoist the load of the job counter out of a worker's wait loop.
#
# Handing out a job takes no lock (a lock taken by the caller and then by every worker makes
# the workers sleep in the kernel for a moment on every job, and each wake-up may move them
# onto the caller's CPU).  The protocol, all atomics sequentially consistent:
# * ``gen`` is even while a job is published and odd while the caller replaces it.
# * A worker that sees a new even ``gen`` registers (``active += 1``) and reads ``gen`` again:
#   unchanged, the job's description is stable until it leaves (the caller waits for
#   ``active == 0`` after making ``gen`` odd and before writing); changed, it leaves and looks
#   again.  Joining a job whose chunks are all taken is harmless: it finds none.
# * The caller registers itself, publishes (``gen`` even), runs chunks, leaves, and waits for
#   ``done == n``: every chunk has finished.  A worker still registered then (it joined late,
#   or was descheduled before it took a chunk) finds no chunk left and touches no more than
#   the counters; the next job waits for it to leave before it writes the description.
# * Sleeping, both ways, is the only use of the mutex: a worker that found no job for
#   SPIN_TICKS announces itself in ``sleepers`` and rechecks ``gen`` under the mutex before
#   waiting; the caller broadcasts only when ``sleepers`` is non-zero after publishing.  The
#   caller waiting for the workers sets ``main_waiting`` likewise; the last chunk to finish
#   (or the last participant to leave, for the wait before publishing) wakes it.
RUNTIME_IR = r"""
@lt_par_m = global [128 x i8] zeroinitializer, align 64
@lt_par_work_cv = global [128 x i8] zeroinitializer, align 64
@lt_par_done_cv = global [128 x i8] zeroinitializer, align 64
@lt_par_idle_cv = global [128 x i8] zeroinitializer, align 64
@lt_par_gen = global i64 0, align 64
@lt_par_fn = global ptr null, align 64
@lt_par_ctx = global ptr null
@lt_par_n = global i64 0
@lt_par_err_chunk = global i64 0
@lt_par_err_rc = global i32 0
@lt_par_next = global i64 0, align 64
@lt_par_done = global i64 0, align 64
@lt_par_active = global i64 0, align 64
@lt_par_sleepers = global i64 0, align 64
@lt_par_main_waiting = global i64 0, align 64
@lt_par_busy = global i32 0, align 64
@lt_par_threads = global i64 1, align 64
@lt_par_caller_cpu = global i32 -1
@lt_par_started = global i64 0
@lt_par_inited = global i32 0
@lt_par_jobs = global i64 0, align 64

declare i32 @pthread_mutex_init(ptr, ptr)
declare i32 @pthread_cond_init(ptr, ptr)
declare i32 @pthread_mutex_lock(ptr)
declare i32 @pthread_mutex_unlock(ptr)
declare i32 @pthread_cond_wait(ptr, ptr)
declare i32 @pthread_cond_broadcast(ptr)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)
SPIN_HELPERS
SPREAD_HELPERS
define internal void @lt_par_record(i64 %t, i32 %rc) {
entry:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  %old = load i64, ptr @lt_par_err_chunk
  %lower = icmp slt i64 %t, %old
  br i1 %lower, label %set, label %done
set:
  store i64 %t, ptr @lt_par_err_chunk
  store i32 %rc, ptr @lt_par_err_rc
  br label %done
done:
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  ret void
}

; take chunks from the shared counter until none are left; count each one finished (the
; last one wakes a caller sleeping in lt_par_wait_for)
define internal void @lt_par_drain(ptr %fn, ptr %ctx, i64 %n) {
entry:
  br label %next
next:
  %t = atomicrmw add ptr @lt_par_next, i64 1 seq_cst
  %more = icmp slt i64 %t, %n
  br i1 %more, label %run, label %out
run:
  %rc = call i32 %fn(ptr %ctx, i64 %t, i64 %n)
  %bad = icmp ne i32 %rc, 0
  br i1 %bad, label %record, label %finished
record:
  call void @lt_par_record(i64 %t, i32 %rc)
  br label %finished
finished:
  %d = atomicrmw add ptr @lt_par_done, i64 1 seq_cst
  %d1 = add i64 %d, 1
  %all = icmp eq i64 %d1, %n
  br i1 %all, label %check, label %next
check:
  %mw = load atomic i64, ptr @lt_par_main_waiting seq_cst, align 64
  %waiting = icmp ne i64 %mw, 0
  br i1 %waiting, label %wake, label %next
wake:                                   ; as in lt_par_leave
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  call i32 @pthread_cond_broadcast(ptr @lt_par_done_cv)
  br label %next
out:
  ret void
}

; the caller waits until the counter at %c reads %want: spin, then sleep.  (For the end of a
; job, until all n chunks are finished, not until every participant left: a worker that joined
; but was descheduled before taking a chunk would hold the caller up for a time slice on a busy
; machine; the next job waits for it instead, until no participant is left.)
define internal void @lt_par_wait_for(ptr %c, i64 %want) {
entry:
  %t0 = call i64 @lt_par_spin_start()
  br label %spin
spin:
  %i = phi i64 [ 0, %entry ], [ %i1, %spin.next ]
  %v = load atomic i64, ptr %c seq_cst, align 64
  %there = icmp eq i64 %v, %want
  br i1 %there, label %done, label %spin.next
spin.next:
  %i1 = add i64 %i, 1
  %more = call i1 @lt_par_keep_spinning(i64 %t0, i64 %i1)
  br i1 %more, label %spin, label %sleep
sleep:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  store atomic i64 1, ptr @lt_par_main_waiting seq_cst, align 64
  br label %check
check:
  %v2 = load atomic i64, ptr %c seq_cst, align 64
  %there2 = icmp eq i64 %v2, %want
  br i1 %there2, label %wake, label %wait
wait:
  call i32 @pthread_cond_wait(ptr @lt_par_done_cv, ptr @lt_par_m)
  br label %check
wake:
  store atomic i64 0, ptr @lt_par_main_waiting seq_cst, align 64
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  br label %done
done:
  ret void
}

; a participant leaves the job; the last one wakes a caller sleeping in lt_par_wait_for
define internal void @lt_par_leave() {
entry:
  %a = atomicrmw sub ptr @lt_par_active, i64 1 seq_cst
  %last = icmp eq i64 %a, 1
  br i1 %last, label %check, label %out
check:
  %mw = load atomic i64, ptr @lt_par_main_waiting seq_cst, align 64
  %waiting = icmp ne i64 %mw, 0
  br i1 %waiting, label %wake, label %out
wake:                                   ; the caller is waiting (it held the mutex since it
  call i32 @pthread_mutex_lock(ptr @lt_par_m)  ; said so), so broadcast after releasing it:
  call i32 @pthread_mutex_unlock(ptr @lt_par_m) ; the woken thread need not wait for the mutex
  call i32 @pthread_cond_broadcast(ptr @lt_par_done_cv)
  br label %out
out:
  ret void
}

define internal ptr @lt_par_worker(ptr %arg) {
entry:
  %w = ptrtoint ptr %arg to i64
  %w1 = add i64 %w, 1
  br label %loop
loop:
  %seen = phi i64 [ 0, %entry ], [ %seen, %sitout.leave ], [ %seen, %retry ], [ %g, %ran ],
                  [ %seen, %awake ]
  %nt = load atomic i64, ptr @lt_par_threads monotonic, align 64
  %part = icmp slt i64 %w1, %nt
  br i1 %part, label %spin.start, label %sitout
sitout:                                 ; not taking part: sleep until the thread count grows
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  br label %sitout.check
sitout.check:
  %nt2 = load atomic i64, ptr @lt_par_threads monotonic, align 64
  %part2 = icmp slt i64 %w1, %nt2
  br i1 %part2, label %sitout.leave, label %sitout.wait
sitout.wait:
  call i32 @pthread_cond_wait(ptr @lt_par_idle_cv, ptr @lt_par_m)
  br label %sitout.check
sitout.leave:
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  br label %loop
spin.start:
  %t0 = call i64 @lt_par_spin_start()
  br label %spin
spin:
  %i = phi i64 [ 0, %spin.start ], [ %i1, %spin.next ]
  %g = load atomic i64, ptr @lt_par_gen acquire, align 64
  %odd = and i64 %g, 1
  %stable = icmp eq i64 %odd, 0
  %moved = icmp ne i64 %g, %seen
  %new = and i1 %stable, %moved
  br i1 %new, label %join, label %spin.next
spin.next:
  %i1 = add i64 %i, 1
  %more = call i1 @lt_par_keep_spinning(i64 %t0, i64 %i1)
  br i1 %more, label %spin, label %sleep
join:
  %a0 = atomicrmw add ptr @lt_par_active, i64 1 seq_cst
  %g2 = load atomic i64, ptr @lt_par_gen seq_cst, align 64
  %same = icmp eq i64 %g2, %g
  br i1 %same, label %run, label %retry
retry:                                  ; the caller is replacing the job: let it
  call void @lt_par_leave()
  br label %loop
run:
  %fn = load ptr, ptr @lt_par_fn
  %ctx = load ptr, ptr @lt_par_ctx
  %n = load i64, ptr @lt_par_n
  %cc = load i32, ptr @lt_par_caller_cpu
  %me = call i32 @lt_par_cpu()
  %known = icmp sge i32 %cc, 0
  %shared = icmp eq i32 %me, %cc
  %crowded = and i1 %known, %shared
  br i1 %crowded, label %spread, label %drain
spread:
  call void @lt_par_move_off(i32 %cc)
  br label %drain
drain:
  call void @lt_par_drain(ptr %fn, ptr %ctx, i64 %n)
  call void @lt_par_leave()
  br label %ran
ran:
  br label %loop
sleep:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  %s0 = atomicrmw add ptr @lt_par_sleepers, i64 1 seq_cst
  br label %sleep.check
sleep.check:
  %gs = load atomic i64, ptr @lt_par_gen seq_cst, align 64
  %moveds = icmp ne i64 %gs, %seen
  %nts = load atomic i64, ptr @lt_par_threads monotonic, align 64
  %parts = icmp slt i64 %w1, %nts
  %wake = select i1 %parts, i1 %moveds, i1 true
  br i1 %wake, label %awake, label %sleep.wait
sleep.wait:
  call i32 @pthread_cond_wait(ptr @lt_par_work_cv, ptr @lt_par_m)
  br label %sleep.check
awake:
  %s1 = atomicrmw sub ptr @lt_par_sleepers, i64 1 seq_cst
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  br label %loop
}

define void @lt_par_start(i64 %threads) {
entry:
  %tid = alloca i64
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  store atomic i64 %threads, ptr @lt_par_threads seq_cst, align 64
  call i32 @pthread_cond_broadcast(ptr @lt_par_idle_cv)
  call i32 @pthread_cond_broadcast(ptr @lt_par_work_cv)
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  %want = sub i64 %threads, 1
  br label %check
check:
  %k = load i64, ptr @lt_par_started
  %need = icmp slt i64 %k, %want
  br i1 %need, label %spawn, label %done
spawn:
  %arg = inttoptr i64 %k to ptr
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @lt_par_worker, ptr %arg)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %spawned, label %failed
spawned:
  %t = load i64, ptr %tid
  call i32 @pthread_detach(i64 %t)
  %k1 = add i64 %k, 1
  store i64 %k1, ptr @lt_par_started
  br label %check
failed:                                  ; run with the workers we have
  %have = add i64 %k, 1
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  store atomic i64 %have, ptr @lt_par_threads seq_cst, align 64
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  br label %done
done:
  ret void
}

define void @lt_par_init() {
entry:
  %done = load i32, ptr @lt_par_inited
  %first = icmp eq i32 %done, 0
  br i1 %first, label %init, label %out
init:
  call i32 @pthread_mutex_init(ptr @lt_par_m, ptr null)
  call i32 @pthread_cond_init(ptr @lt_par_work_cv, ptr null)
  call i32 @pthread_cond_init(ptr @lt_par_done_cv, ptr null)
  call i32 @pthread_cond_init(ptr @lt_par_idle_cv, ptr null)
  store i32 1, ptr @lt_par_inited
  br label %out
out:
  ret void
}

define i64 @lt_par_get_threads() {
entry:
  %nt = load atomic i64, ptr @lt_par_threads monotonic, align 64
  ret i64 %nt
}

define i64 @lt_par_chunks(i64 %work, i64 %n) {
entry:
  %small = icmp slt i64 %work, THRESHOLD
  br i1 %small, label %single, label %split
single:
  ret i64 1
split:
  %c = sdiv i64 %work, GRAIN
  %c1 = call i64 @llvm.smin.i64(i64 %c, i64 %n)
  %c2 = call i64 @llvm.smin.i64(i64 %c1, i64 MAX_CHUNKS)
  %c3 = call i64 @llvm.smax.i64(i64 %c2, i64 1)
  ret i64 %c3
}

define i64 @lt_par_get_jobs() {
entry:
  %j = load atomic i64, ptr @lt_par_jobs monotonic, align 64
  ret i64 %j
}

declare i64 @llvm.smin.i64(i64, i64)
declare i64 @llvm.smax.i64(i64, i64)

define i32 @lt_parallel_for(ptr %fn, ptr %ctx, i64 %n) {
entry:
  %nt = load atomic i64, ptr @lt_par_threads monotonic, align 64
  %multi = icmp sgt i64 %nt, 1
  %chunks = icmp sgt i64 %n, 1
  %par = and i1 %multi, %chunks
  br i1 %par, label %try, label %serial
try:
  %x = cmpxchg ptr @lt_par_busy, i32 0, i32 1 seq_cst seq_cst
  %got = extractvalue { i32, i1 } %x, 1
  br i1 %got, label %publish, label %serial
serial:
  br label %s.head
s.head:
  %t = phi i64 [ 0, %serial ], [ %t1, %s.ok ]
  %more = icmp slt i64 %t, %n
  br i1 %more, label %s.run, label %s.done
s.run:
  %rc = call i32 %fn(ptr %ctx, i64 %t, i64 %n)
  %bad = icmp ne i32 %rc, 0
  br i1 %bad, label %s.fail, label %s.ok
s.ok:
  %t1 = add i64 %t, 1
  br label %s.head
s.fail:
  ret i32 %rc
s.done:
  ret i32 0
publish:                                 ; only the holder of lt_par_busy writes gen
  %jobs = atomicrmw add ptr @lt_par_jobs, i64 1 monotonic
  %g = load atomic i64, ptr @lt_par_gen monotonic, align 64
  %godd = add i64 %g, 1
  store atomic i64 %godd, ptr @lt_par_gen seq_cst, align 64
  call void @lt_par_wait_for(ptr @lt_par_active, i64 0)  ; late joiners of the last job leave
  store ptr %fn, ptr @lt_par_fn
  store ptr %ctx, ptr @lt_par_ctx
  store i64 %n, ptr @lt_par_n
  store atomic i64 0, ptr @lt_par_next seq_cst, align 64
  store atomic i64 0, ptr @lt_par_done seq_cst, align 64
  store i64 9223372036854775807, ptr @lt_par_err_chunk
  store i32 0, ptr @lt_par_err_rc
  %mycpu = call i32 @lt_par_cpu()
  store i32 %mycpu, ptr @lt_par_caller_cpu
  %a = atomicrmw add ptr @lt_par_active, i64 1 seq_cst
  %geven = add i64 %g, 2
  store atomic i64 %geven, ptr @lt_par_gen seq_cst, align 64
  %sl = load atomic i64, ptr @lt_par_sleepers seq_cst, align 64
  %anyone = icmp ne i64 %sl, 0
  br i1 %anyone, label %wake, label %work
wake:                                    ; as in lt_par_leave: sleepers are waiting once the
  call i32 @pthread_mutex_lock(ptr @lt_par_m)   ; mutex is free
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  call i32 @pthread_cond_broadcast(ptr @lt_par_work_cv)
  br label %work
work:
  call void @lt_par_drain(ptr %fn, ptr %ctx, i64 %n)
  %left = atomicrmw sub ptr @lt_par_active, i64 1 seq_cst
  call void @lt_par_wait_for(ptr @lt_par_done, i64 %n)
  %err = load i32, ptr @lt_par_err_rc
  store atomic i32 0, ptr @lt_par_busy release, align 64
  ret i32 %err
}
""".replace("SPIN_HELPERS", _SPIN_IR).replace("SPREAD_HELPERS", _SPREAD_IR).replace(
    "GRAIN", str(GRAIN)).replace(
    "MAX_CHUNKS", str(MAX_CHUNKS)).replace("THRESHOLD", str(THRESHOLD))

EXPORTS = ("lt_parallel_for", "lt_par_chunks", "lt_par_start", "lt_par_init",
           "lt_par_get_threads", "lt_par_get_jobs")

_lock = threading.Lock()
_runtime: Optional[Any] = None
_start: Optional[Callable[[int], None]] = None
_get_jobs: Optional[Callable[[], int]] = None
_threads: Optional[int] = None


def _default_threads() -> int:
    env = os.environ.get("LATTICE_NUM_THREADS", "").strip()
    if env:
        try:
            return _check_threads(int(env))
        except ValueError as exc:
            raise ValueError(f"LATTICE_NUM_THREADS={env!r}: {exc}") from None
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def _check_threads(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"the number of threads must be an int in [1, {MAX_THREADS}], got {n!r}")
    return n


def jobs_run() -> int:
    """How many loops the pool's workers were asked to help with in this process (0 before
    the runtime is loaded).  A loop below the threshold, one run with one thread, and one
    started while the pool is busy (a nested or concurrent call) run on the calling thread
    and are not counted."""
    with _lock:
        get = _get_jobs
    return 0 if get is None else int(get())


def get_num_threads() -> int:
    """Threads parallel kernels use (``LATTICE_NUM_THREADS``, else the CPUs available)."""
    global _threads
    with _lock:
        if _threads is None:
            _threads = _default_threads()
        return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in parallel kernels from now on (results do not change: the chunks
    depend on the sizes only)."""
    global _threads
    n = _check_threads(n)
    with _lock:
        _threads = n
        if _start is not None:
            _start(n)
    from . import blas
    blas.set_num_threads(n)  # large products call the BLAS, which runs threads of its own


def ensure_runtime() -> None:
    """Compile (or load from the disk cache) and start the runtime; make its symbols known to
    LLVM so kernel objects that call it can be loaded.  Idempotent."""
    global _runtime, _start, _threads, _get_jobs
    with _lock:
        if _runtime is not None:
            return
        import llvmlite.binding as llvm

        from . import cache, jit
        key = cache.make_key("lattice parallel runtime", RUNTIME_IR)
        payload = cache.load(key)
        if payload is not None:
            mod = jit.load_object(payload["object"])
        else:
            mod = jit.compile_ir(RUNTIME_IR)
            cache.store(key, {"object": mod.object_code, "llvm_ir": "", "asm": "", "meta": {}})
        # worker threads sleep inside this code for the rest of the process: never free it
        mod.close = lambda: None  # type: ignore[method-assign]
        with jit.LLVM_LOCK:
            for name in EXPORTS:
                llvm.add_symbol(name, mod.address(name))
        ctypes.CFUNCTYPE(None)(mod.address("lt_par_init"))()
        start = ctypes.CFUNCTYPE(None, ctypes.c_int64)(mod.address("lt_par_start"))
        if _threads is None:
            _threads = _default_threads()
        start(_threads)
        _get_jobs = ctypes.CFUNCTYPE(ctypes.c_int64)(mod.address("lt_par_get_jobs"))
        _runtime, _start = mod, start
