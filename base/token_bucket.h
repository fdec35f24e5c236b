// File: base/token_bucket.h
// -----------------------------------------------------------------------------
// TokenBucket limits a rate (bytes or operations per second, as Firecracker's rate limiter does):
// it holds up to a second's worth of tokens, refilled continuously; work may go ahead while the
// bucket holds a whole token and takes its cost afterwards, so one item may overdraw it (the next
// waits until the debt is paid). Over any long interval the rate holds; a burst is at most a
// second's worth plus one item.
//
//   TokenBucket bytes(10 << 20, absl::Now());        // 10 MiB/s
//   if (bytes.Ready(now)) { send(frame); bytes.Take(frame.size()); }
//   else wait(bytes.UntilReady(now));
//
// Thread-safety: none; one thread uses a bucket (a queue's worker).

#ifndef VMMKIT_BASE_TOKEN_BUCKET_H_
#define VMMKIT_BASE_TOKEN_BUCKET_H_

#include <cstdint>

#include "absl/time/time.h"

namespace vmmkit {

class TokenBucket {
 public:
  // `per_second` tokens a second, starting full; 0 means unlimited (always ready).
  TokenBucket(uint64_t per_second, absl::Time now)
      : rate_(per_second), tokens_(static_cast<double>(per_second)), last_(now) {}

  bool unlimited() const { return rate_ == 0; }
  // Whether work may go ahead at `now` (the bucket holds a whole token).
  bool Ready(absl::Time now) {
    Refill(now);
    return unlimited() || tokens_ >= 1;
  }
  // Takes `n` tokens for work done (the bucket may go into debt).
  void Take(uint64_t n) {
    if (!unlimited()) tokens_ -= static_cast<double>(n);
  }
  // How long until Ready (zero if it is).
  absl::Duration UntilReady(absl::Time now) {
    if (Ready(now)) return absl::ZeroDuration();
    return absl::Seconds((1 - tokens_) / static_cast<double>(rate_));
  }

 private:
  void Refill(absl::Time now) {
    if (unlimited() || now <= last_) return;
    const double added = absl::ToDoubleSeconds(now - last_) * static_cast<double>(rate_);
    tokens_ =
        tokens_ + added > static_cast<double>(rate_) ? static_cast<double>(rate_) : tokens_ + added;
    last_ = now;
  }

  uint64_t rate_;
  double tokens_;
  absl::Time last_;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_TOKEN_BUCKET_H_
