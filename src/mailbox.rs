//! A connection's queue of things to write: bounded, any number of senders, one
//! receiver, and nearly free while empty.
//!
//! Every connection has one for the hub's lines (an IRC connection has three), so
//! its size at rest is the size of a connection at rest. tokio's bounded `mpsc`
//! allocates a block of 32 slots and cache-padded counters up front, about 1 KB a
//! channel (1.7 KB for 32-byte items); with 10,000 idle connections that was the
//! largest part of their memory. Here the queue is a `VecDeque` behind a mutex that
//! holds nothing until a line waits and gives a burst's room back when its writer
//! goes idle, and the receiver sleeps on a [`Notify`] woken only when the queue
//! stops being empty. The senders are the hub (under its lock, one push per member) and the
//! connection's own reader, so the mutex is almost never contended.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Items a drained queue may keep room for; a larger one is given back.
const KEEP_WHEN_EMPTY: usize = 16;

/// A bounded queue of `capacity` items, as a sending and a receiving half.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiving: true,
        }),
        ready: Notify::new(),
        capacity,
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why an item was not queued; the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// `capacity` items wait already: the receiver is not keeping up.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver waits here for the queue to stop being empty, or to close.
    ready: Notify,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiving: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; a poisoned queue is still a valid queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half; clone it for every place that queues.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` without waiting.
    pub fn try_send(&self, item: T) -> Result<(), Refused<T>> {
        let mut state = self.shared.lock();
        if !state.receiving {
            return Err(Refused::Closed(item));
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(Refused::Full(item));
        }
        let wake = state.queue.is_empty();
        state.queue.push_back(item);
        drop(state);
        // A receiver that found items is not waiting; one that found none is, or
        // will find the permit this leaves.
        if wake {
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    /// Whether the queue holds `capacity` items: its client stopped reading.
    pub fn is_full(&self) -> bool {
        self.shared.lock().queue.len() >= self.shared.capacity
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.ready.notify_one();
        }
    }
}

/// The receiving half, for the connection's writer task.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Waits for items and moves up to `limit` of them into `buf`, oldest first.
    /// Returns 0 only when every sender is gone and nothing is left. Cancel-safe:
    /// items are taken only when it returns.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        let take = |queue: &mut VecDeque<T>| {
            let count = limit.min(queue.len());
            buf.extend(queue.drain(..count));
            count
        };
        self.when_ready(take).await.unwrap_or(0)
    }

    /// Waits for one item; `None` when every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<T> {
        self.when_ready(VecDeque::pop_front).await.flatten()
    }

    /// Waits until items wait, then `take`s from them under the lock; `None` once
    /// every sender is gone and nothing is left.
    async fn when_ready<R>(&mut self, take: impl FnOnce(&mut VecDeque<T>) -> R) -> Option<R> {
        loop {
            {
                let mut state = self.shared.lock();
                if !state.queue.is_empty() {
                    return Some(take(&mut state.queue));
                }
                if state.senders == 0 {
                    return None;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    /// The oldest item, if one waits.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().queue.pop_front()
    }

    /// Frees the room a burst grew, if the queue is empty; writers call it when
    /// they go idle, so that a busy queue is not shrunk and grown again.
    pub fn release_room(&self) {
        let mut state = self.shared.lock();
        if state.queue.is_empty() && state.queue.capacity() > KEEP_WHEN_EMPTY {
            state.queue = VecDeque::new();
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiving = false;
        // Dropped outside the lock: an item's own drop may take other locks.
        let left = std::mem::take(&mut state.queue);
        drop(state);
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_come_out_in_order_and_the_bound_holds() {
        let (tx, mut rx) = bounded(3);
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        assert!(tx.is_full());
        assert_eq!(tx.try_send(3), Err(Refused::Full(3)));
        assert_eq!(rx.try_recv(), Some(0));
        assert!(!tx.is_full());
        tx.try_send(3).unwrap();
        let mut got = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 2)), 2);
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 10)), 1);
        assert_eq!(got, [1, 2, 3]);
        assert!(rx.is_empty());
    }

    #[test]
    fn a_gone_receiver_refuses_and_frees_what_waited() {
        let (tx, rx) = bounded(4);
        let line = Arc::new("kept alive by the queue");
        tx.try_send(line.clone()).unwrap();
        assert_eq!(Arc::strong_count(&line), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&line), 1);
        assert!(matches!(tx.try_send(line), Err(Refused::Closed(_))));
    }

    #[tokio::test]
    async fn the_receiver_drains_what_is_left_after_the_last_sender_goes() {
        let (tx, mut rx) = bounded(4);
        let other = tx.clone();
        tx.try_send(1).unwrap();
        drop(tx);
        other.try_send(2).unwrap();
        drop(other);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_an_item_and_for_the_close() {
        let (tx, mut rx) = bounded(4);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        // One thread: each yield lets the receiver run until it waits again.
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(got.unwrap().unwrap(), (Some(7), None));
    }

    #[test]
    fn a_drained_burst_gives_its_room_back() {
        let (tx, mut rx) = bounded(10_000);
        for i in 0..5_000 {
            tx.try_send(i).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 5_000 {
            rt.block_on(rx.recv_many(&mut got, 256));
        }
        rx.release_room();
        assert!(rx.shared.lock().queue.capacity() <= KEEP_WHEN_EMPTY);
        for i in 0..5_000 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_some() {}
        rx.release_room();
        assert!(rx.shared.lock().queue.capacity() <= KEEP_WHEN_EMPTY);
    }

    /// Senders on other threads, a receiver that sleeps between batches: every
    /// item arrives once, each sender's in its order, and nothing waits forever.
    #[test]
    fn senders_on_other_threads_lose_nothing() {
        const SENDERS: u64 = 4;
        const EACH: u64 = 20_000;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = bounded(64);
        let threads: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        let mut item = (sender, n);
                        while let Err(Refused::Full(back)) = tx.try_send(item) {
                            item = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let next = rt.block_on(async move {
            let mut next = vec![0; SENDERS as usize];
            let mut batch = Vec::new();
            let read = async {
                while rx.recv_many(&mut batch, 50).await > 0 {
                    for (sender, n) in batch.drain(..) {
                        assert_eq!(n, next[sender as usize]);
                        next[sender as usize] += 1;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(60), read)
                .await
                .expect("the receiver was never woken");
            next
        });
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(next, vec![EACH; SENDERS as usize]);
    }
}
