// File: base/mutex.h
// -----------------------------------------------------------------------------
// Mutex, MutexLock, CondVar and SharedMutex (ReaderLock, WriterLock): std::mutex,
// std::condition_variable and std::shared_mutex with Clang's thread-safety
// annotations, so that `-Wthread-safety` (on for all project code, tools/cc.bzl) checks every
// member marked ABSL_GUARDED_BY and every helper marked ABSL_EXCLUSIVE_LOCKS_REQUIRED.
//
// Why not absl::Mutex, which is annotated already: Debian's Abseil is not built with
// -fsanitize=thread, so ThreadSanitizer cannot see the ordering an absl::Mutex provides and
// would report races that are not there. std::mutex goes through pthread, which TSAN intercepts.
//
//   class Counter {
//    public:
//     void Add() { MutexLock lock(mu_); ++n_; }
//    private:
//     Mutex mu_;
//     int n_ ABSL_GUARDED_BY(mu_) = 0;
//   };

#ifndef VMMKIT_BASE_MUTEX_H_
#define VMMKIT_BASE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace vmmkit {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // For the analysis only: tells it the caller holds the lock (a callback documented to run
  // under it). Checks nothing at run time.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A reader-writer lock: many readers (ReaderLock) or one writer (WriterLock). std::shared_mutex
// underneath, for the same reason as Mutex.
class ABSL_LOCKABLE SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { mu_.lock_shared(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

class ABSL_SCOPED_LOCKABLE WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) { mu_.ReaderLock(); }
  ~ReaderLock() ABSL_UNLOCK_FUNCTION() { mu_.ReaderUnlock(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

// A condition variable used with a Mutex the caller holds.
class CondVar {
 public:
  // Waits until `done()` is true; `mu` is released while waiting and held when `done` runs.
  template <typename Predicate>
  void Wait(Mutex& mu, Predicate done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock, done);
    lock.release();  // Still held: the caller's scope unlocks it.
  }
  // As Wait, for at most `timeout`. Returns done()'s last value.
  template <typename Predicate>
  bool WaitFor(Mutex& mu, absl::Duration timeout, Predicate done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const bool result = cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done);
    lock.release();
    return result;
  }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_MUTEX_H_
