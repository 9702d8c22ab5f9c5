// Moving blocking work off the event loops. A coroutine on an I/O loop awaits offload(); the
// work runs on the worker pool; the coroutine resumes on its own executor with the result.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace pigeon::net {

// Runs `work()` on `pool` and completes with its result on the awaiting coroutine's executor.
template <typename Executor, typename Work>
auto offload(Executor pool, Work work) {
  using R = std::invoke_result_t<Work&>;
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
      [pool](auto handler, Work w) {
        boost::asio::post(pool, [h = std::move(handler), w = std::move(w)]() mutable {
          R result = w();
          auto ex = boost::asio::get_associated_executor(h);
          boost::asio::dispatch(ex, [h = std::move(h), r = std::move(result)]() mutable {
            std::move(h)(std::move(r));
          });
        });
      },
      boost::asio::use_awaitable, std::move(work));
}

// Runs `start(done)` on `pool`, where `start` begins an asynchronous operation that calls
// `done(R)` exactly once, on any thread; completes with that R on the awaiting coroutine's
// executor. For calls such as core::Service::send that finish on a store thread.
template <typename R, typename Executor, typename Start>
auto offloadAsync(Executor pool, Start start) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
      [pool](auto handler, Start s) {
        using Handler = decltype(handler);
        auto shared = std::make_shared<Handler>(std::move(handler));
        boost::asio::post(pool, [shared, s = std::move(s)]() mutable {
          s(std::function<void(R)>([shared](R result) {
            auto ex = boost::asio::get_associated_executor(*shared);
            boost::asio::dispatch(ex, [shared, r = std::move(result)]() mutable {
              std::move (*shared)(std::move(r));
            });
          }));
        });
      },
      boost::asio::use_awaitable, std::move(start));
}

}  // namespace pigeon::net
