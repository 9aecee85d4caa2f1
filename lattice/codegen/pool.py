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
  iterations and about ``work`` element operations into: 1 below :data:`THRESHOLD` elements or
  with one thread, else ``min(n, threads * CHUNKS_PER_THREAD)``.  The count depends only on
  the sizes and the thread count, never on timing, so per-chunk partial results combined in
  chunk order give the same bits on every run with the same thread count.
* ``lt_par_start(i64 threads)`` (called from Python): sets the number of threads taking part
  and starts workers up to ``threads - 1``.  Workers are detached threads that sleep on a
  condition variable between jobs; workers numbered at or above ``threads - 1`` sit out.

Synchronisation: one mutex guards the job description (function, context, chunk count,
generation, number of active participants); chunks are handed out by an atomic counter.  A new
job waits until every participant of the previous one has checked out, so no late worker can
run an old function on a new chunk index.

Thread count: ``LATTICE_NUM_THREADS`` (read when first needed), else the CPUs this process may
run on; :func:`set_num_threads` changes it at any time.  This module imports no llvmlite until
the runtime is needed, so ``import lattice`` stays cheap.
"""
from __future__ import annotations

import ctypes
import os
import threading
from typing import Any, Callable, Optional

__all__ = ["set_num_threads", "get_num_threads", "ensure_runtime", "THRESHOLD",
           "CHUNKS_PER_THREAD", "MAX_CHUNKS", "MAX_THREADS"]

#: Loops over fewer elements than this run serially (waking the pool costs a few microseconds).
THRESHOLD = 1 << 16
#: Chunks per thread: some slack for a core that is busy with another process.
CHUNKS_PER_THREAD = 4
#: Upper bound on chunks (partial-result buffers live on the stack).
MAX_CHUNKS = 256
MAX_THREADS = MAX_CHUNKS // CHUNKS_PER_THREAD
#: Polls of the job counter before a thread sleeps on a condition variable (tens of
#: microseconds): back-to-back parallel loops then start without a wake-up through the kernel.
SPIN = 20000


# The pool's state is in globals with external linkage on purpose: for an internal global
# whose address never escapes, LLVM may assume an external call (pthread_cond_wait) leaves it
# unchanged and hoist the load of the job counter out of a worker's wait loop.
RUNTIME_IR = r"""
@lt_par_m = global [128 x i8] zeroinitializer, align 64
@lt_par_work_cv = global [128 x i8] zeroinitializer, align 64
@lt_par_done_cv = global [128 x i8] zeroinitializer, align 64
@lt_par_gen = global i64 0
@lt_par_fn = global ptr null
@lt_par_ctx = global ptr null
@lt_par_n = global i64 0
@lt_par_active = global i64 0
@lt_par_err_chunk = global i64 0
@lt_par_err_rc = global i32 0
@lt_par_next = global i64 0, align 64
@lt_par_busy = global i32 0, align 64
@lt_par_threads = global i64 1
@lt_par_started = global i64 0
@lt_par_inited = global i32 0

declare i32 @pthread_mutex_init(ptr, ptr)
declare i32 @pthread_cond_init(ptr, ptr)
declare i32 @pthread_mutex_lock(ptr)
declare i32 @pthread_mutex_unlock(ptr)
declare i32 @pthread_cond_wait(ptr, ptr)
declare i32 @pthread_cond_broadcast(ptr)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)

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

; take chunks from the shared counter until none are left
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
  br i1 %bad, label %record, label %next
record:
  call void @lt_par_record(i64 %t, i32 %rc)
  br label %next
out:
  ret void
}

define internal ptr @lt_par_worker(ptr %arg) {
entry:
  %w = ptrtoint ptr %arg to i64
  %w1 = add i64 %w, 1
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  br label %loop
loop:                                   ; the mutex is held here
  %seen = phi i64 [ 0, %entry ], [ %seen, %sleep ], [ %seen, %relock ], [ %gt, %loop.from.take ], [ %gt, %finished ], [ %gt, %wake ]
  %g = load i64, ptr @lt_par_gen
  %new = icmp ne i64 %g, %seen
  br i1 %new, label %take, label %idle
idle:                                   ; spin a little (a job often follows soon), then sleep
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  br label %spin
spin:
  %i = phi i64 [ 0, %idle ], [ %i1, %spin.next ]
  %gs = load atomic i64, ptr @lt_par_gen monotonic, align 8
  %moved = icmp ne i64 %gs, %seen
  br i1 %moved, label %relock, label %spin.next
spin.next:
  %i1 = add i64 %i, 1
  %again = icmp slt i64 %i1, SPIN
  br i1 %again, label %spin, label %tosleep
relock:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  br label %loop
tosleep:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  %gw = load i64, ptr @lt_par_gen
  %late = icmp ne i64 %gw, %seen
  br i1 %late, label %take, label %sleep
sleep:
  call i32 @pthread_cond_wait(ptr @lt_par_work_cv, ptr @lt_par_m)
  br label %loop
take:
  %gt = phi i64 [ %g, %loop ], [ %gw, %tosleep ]
  %nt = load i64, ptr @lt_par_threads
  %part = icmp slt i64 %w1, %nt
  br i1 %part, label %join, label %sitout
sitout:
  br label %loop.from.take
loop.from.take:
  br label %loop
join:
  %fn = load ptr, ptr @lt_par_fn
  %ctx = load ptr, ptr @lt_par_ctx
  %n = load i64, ptr @lt_par_n
  %a = atomicrmw add ptr @lt_par_active, i64 1 seq_cst
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  call void @lt_par_drain(ptr %fn, ptr %ctx, i64 %n)
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  %b = atomicrmw sub ptr @lt_par_active, i64 1 seq_cst
  %b1 = sub i64 %b, 1
  %last = icmp eq i64 %b1, 0
  br i1 %last, label %wake, label %finished
wake:
  call i32 @pthread_cond_broadcast(ptr @lt_par_done_cv)
  br label %loop
finished:
  br label %loop
}

define void @lt_par_start(i64 %threads) {
entry:
  %tid = alloca i64
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  store i64 %threads, ptr @lt_par_threads
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
  store i64 %have, ptr @lt_par_threads
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
  store i32 1, ptr @lt_par_inited
  br label %out
out:
  ret void
}

define i64 @lt_par_get_threads() {
entry:
  %nt = load i64, ptr @lt_par_threads
  ret i64 %nt
}

define i64 @lt_par_chunks(i64 %work, i64 %n) {
entry:
  %nt = load atomic i64, ptr @lt_par_threads monotonic, align 8
  %one = icmp sle i64 %nt, 1
  %small = icmp slt i64 %work, THRESHOLD
  %serial = or i1 %one, %small
  br i1 %serial, label %single, label %split
single:
  ret i64 1
split:
  %c = mul i64 %nt, CHUNKS_PER_THREAD
  %c1 = call i64 @llvm.smin.i64(i64 %c, i64 %n)
  %c2 = call i64 @llvm.smin.i64(i64 %c1, i64 MAX_CHUNKS)
  %c3 = call i64 @llvm.smax.i64(i64 %c2, i64 1)
  ret i64 %c3
}

declare i64 @llvm.smin.i64(i64, i64)
declare i64 @llvm.smax.i64(i64, i64)

define i32 @lt_parallel_for(ptr %fn, ptr %ctx, i64 %n) {
entry:
  %nt = load atomic i64, ptr @lt_par_threads monotonic, align 8
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
publish:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  br label %drain.prev
drain.prev:                              ; participants of the previous job must check out
  %pa = load atomic i64, ptr @lt_par_active seq_cst, align 8
  %busyprev = icmp ne i64 %pa, 0
  br i1 %busyprev, label %wait.prev, label %go
wait.prev:
  call i32 @pthread_cond_wait(ptr @lt_par_done_cv, ptr @lt_par_m)
  br label %drain.prev
go:
  store ptr %fn, ptr @lt_par_fn
  store ptr %ctx, ptr @lt_par_ctx
  store i64 %n, ptr @lt_par_n
  store atomic i64 0, ptr @lt_par_next seq_cst, align 64
  store i64 9223372036854775807, ptr @lt_par_err_chunk
  store i32 0, ptr @lt_par_err_rc
  %g = load i64, ptr @lt_par_gen
  %g1 = add i64 %g, 1
  store atomic i64 %g1, ptr @lt_par_gen seq_cst, align 8
  store atomic i64 1, ptr @lt_par_active seq_cst, align 8
  call i32 @pthread_cond_broadcast(ptr @lt_par_work_cv)
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  call void @lt_par_drain(ptr %fn, ptr %ctx, i64 %n)
  %a = atomicrmw sub ptr @lt_par_active, i64 1 seq_cst
  br label %cspin
cspin:                                   ; the others are usually about done: spin first
  %ci = phi i64 [ 0, %go ], [ %ci1, %cspin.next ]
  %act = load atomic i64, ptr @lt_par_active monotonic, align 8
  %alldone = icmp eq i64 %act, 0
  br i1 %alldone, label %cdone, label %cspin.next
cspin.next:
  %ci1 = add i64 %ci, 1
  %cagain = icmp slt i64 %ci1, SPIN
  br i1 %cagain, label %cspin, label %cdone
cdone:
  call i32 @pthread_mutex_lock(ptr @lt_par_m)
  br label %wait.head
wait.head:
  %left = load atomic i64, ptr @lt_par_active seq_cst, align 8
  %others = icmp ne i64 %left, 0
  br i1 %others, label %wait, label %finish
wait:
  call i32 @pthread_cond_wait(ptr @lt_par_done_cv, ptr @lt_par_m)
  br label %wait.head
finish:
  %err = load i32, ptr @lt_par_err_rc
  call i32 @pthread_cond_broadcast(ptr @lt_par_done_cv)
  call i32 @pthread_mutex_unlock(ptr @lt_par_m)
  store atomic i32 0, ptr @lt_par_busy release, align 64
  ret i32 %err
}
""".replace("SPIN", str(SPIN)).replace("CHUNKS_PER_THREAD", str(CHUNKS_PER_THREAD)).replace(
    "MAX_CHUNKS", str(MAX_CHUNKS)).replace("THRESHOLD", str(THRESHOLD))

EXPORTS = ("lt_parallel_for", "lt_par_chunks", "lt_par_start", "lt_par_init",
           "lt_par_get_threads")

_lock = threading.Lock()
_runtime: Optional[Any] = None
_start: Optional[Callable[[int], None]] = None
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


def get_num_threads() -> int:
    """Threads parallel kernels use (``LATTICE_NUM_THREADS``, else the CPUs available)."""
    global _threads
    with _lock:
        if _threads is None:
            _threads = _default_threads()
        return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in parallel kernels from now on (results are deterministic for a
    given thread count; a different count may change float rounding of reductions)."""
    global _threads
    n = _check_threads(n)
    with _lock:
        _threads = n
        if _start is not None:
            _start(n)


def ensure_runtime() -> None:
    """Compile (or load from the disk cache) and start the runtime; make its symbols known to
    LLVM so kernel objects that call it can be loaded.  Idempotent."""
    global _runtime, _start, _threads
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
        _runtime, _start = mod, start
