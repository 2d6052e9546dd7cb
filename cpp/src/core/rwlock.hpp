// A readers-writer lock that lets a waiting writer in before new readers.
//
// std::shared_mutex (glibc's default rwlock) prefers readers: threads that
// call predict in a loop would keep a training step waiting for as long as
// they run. This one, on glibc, queues new readers behind a waiting writer
// (PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP); a thread must then not take
// it shared twice. Elsewhere it is std::shared_mutex. It meets the Lockable
// and SharedLockable requirements (std::unique_lock, std::shared_lock).
#pragma once

#include <pthread.h>

#include <shared_mutex>
#include <system_error>

namespace cpucnn {

#if defined(__GLIBC__)
class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    const int rc = pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void lock() { check(pthread_rwlock_wrlock(&lock_)); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { check(pthread_rwlock_rdlock(&lock_)); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  static void check(int rc) {
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock");
  }
  pthread_rwlock_t lock_;
};
#else
using RwLock = std::shared_mutex;
#endif

}  // namespace cpucnn
