//! Places under the connection limits: every connection holds one per address
//! (`limits.max_per_ip`); while it logs in, one of the handshake budget
//! (`limits.max_pending`, `limits.max_pending_per_ip`); once in, one of
//! `limits.max_clients`. Silent sockets can take only handshake places, never a
//! student's seat.
//!
//! When the handshake budget is spent, a new connection takes the place of the
//! oldest one from the address holding the most: silent sockets from a few
//! addresses can slow each other down, but never keep a student at another
//! address out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// What one connection holds; each place is given back when dropped.
pub struct Seat {
    _address: AddressSeat,
    pending: Option<PendingSeat>,
    member: Option<OwnedSemaphorePermit>,
    /// Cancelled when a newer connection took this one's handshake place.
    evicted: CancellationToken,
}

/// The limits' shared counters.
#[derive(Clone)]
pub struct Seats {
    per_address: AddressSeats,
    pending: Arc<Mutex<Pending>>,
    members: Arc<Semaphore>,
}

/// Connections in the handshake, oldest first per address.
struct Pending {
    /// `limits.max_pending` (0 = no limit).
    max: usize,
    /// `limits.max_pending_per_ip` (0 = no limit).
    max_per_address: usize,
    count: usize,
    next_ticket: u64,
    by_address: HashMap<IpAddr, VecDeque<(u64, CancellationToken)>>,
}

/// One connection's handshake place; given back when dropped.
struct PendingSeat {
    pending: Arc<Mutex<Pending>>,
    ip: IpAddr,
    ticket: u64,
}

impl Drop for PendingSeat {
    fn drop(&mut self) {
        let mut pending = lock(&self.pending);
        pending.remove(self.ip, self.ticket);
    }
}

impl Pending {
    /// Takes a place for `ip`, making room where the budget is spent.
    fn take(&mut self, ip: IpAddr, evicted: CancellationToken) -> Option<u64> {
        let here = self.by_address.get(&ip).map_or(0, VecDeque::len);
        if self.max_per_address > 0 && here >= self.max_per_address {
            return None;
        }
        if self.max > 0 && self.count >= self.max {
            self.evict_one()?;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.count += 1;
        self.by_address
            .entry(ip)
            .or_default()
            .push_back((ticket, evicted));
        Some(ticket)
    }

    /// Ends the oldest handshake of the address with the most (of two such
    /// addresses, the one whose oldest came first).
    fn evict_one(&mut self) -> Option<()> {
        let (&ip, _) = self
            .by_address
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .max_by_key(|(_, queue)| (queue.len(), std::cmp::Reverse(queue[0].0)))?;
        let queue = self.by_address.get_mut(&ip)?;
        let (_, token) = queue.pop_front()?;
        if queue.is_empty() {
            self.by_address.remove(&ip);
        }
        self.count -= 1;
        tracing::info!(address = %ip, "handshake places all taken: closed this address's oldest");
        token.cancel();
        Some(())
    }

    fn remove(&mut self, ip: IpAddr, ticket: u64) {
        let Some(queue) = self.by_address.get_mut(&ip) else {
            return;
        };
        // Not found: it was evicted, and its place is already someone else's.
        if let Some(at) = queue.iter().position(|(t, _)| *t == ticket) {
            queue.remove(at);
            self.count -= 1;
        }
        if queue.is_empty() {
            self.by_address.remove(&ip);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a connection got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSeat {
    /// `limits.max_per_ip` connections from this address.
    Address,
    /// The handshake budget is spent.
    Busy,
}

impl Seats {
    /// Counters for the given limits (0 = no limit, but for `max_clients`).
    pub fn new(
        max_clients: usize,
        max_per_ip: usize,
        max_pending: usize,
        max_pending_per_ip: usize,
    ) -> Seats {
        Seats {
            per_address: AddressSeats::new(max_per_ip),
            pending: Arc::new(Mutex::new(Pending {
                max: max_pending,
                max_per_address: max_pending_per_ip,
                count: 0,
                next_ticket: 0,
                by_address: HashMap::new(),
            })),
            members: Arc::new(Semaphore::new(max_clients)),
        }
    }

    /// The places of a new connection from `ip`, still logging in.
    pub fn connect(&self, ip: IpAddr) -> Result<Seat, NoSeat> {
        let address = self.per_address.take(ip).ok_or(NoSeat::Address)?;
        let evicted = CancellationToken::new();
        let ticket = lock(&self.pending)
            .take(ip, evicted.clone())
            .ok_or(NoSeat::Busy)?;
        Ok(Seat {
            _address: address,
            pending: Some(PendingSeat {
                pending: self.pending.clone(),
                ip,
                ticket,
            }),
            member: None,
            evicted,
        })
    }

    /// Only the place per address (`limits.max_per_ip`), for a connection that is
    /// not logging in: an HTTP connection of the web listener. It takes nothing of
    /// the handshake budget, so idle HTTP sockets cannot keep a student out.
    pub fn address(&self, ip: IpAddr) -> Result<AddressSeat, NoSeat> {
        self.per_address.take(ip).ok_or(NoSeat::Address)
    }

    /// Moves a connection that logged in from the handshake budget to a member's
    /// seat; `false` when `max_clients` members are in.
    pub fn promote(&self, seat: &mut Seat) -> bool {
        if seat.member.is_some() {
            return true;
        }
        match self.members.clone().try_acquire_owned() {
            Ok(permit) => {
                seat.member = Some(permit);
                seat.pending = None;
                true
            }
            Err(_) => false,
        }
    }
}

impl Seat {
    /// Completes when a newer connection took this one's handshake place: the
    /// handshake ends with `! Server is busy`.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await
    }
}

/// Connections per IP address.
#[derive(Clone)]
struct AddressSeats {
    max: usize,
    taken: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in `AddressSeats`; gives it back when dropped.
pub struct AddressSeat {
    seats: AddressSeats,
    ip: IpAddr,
}

impl AddressSeats {
    fn new(max: usize) -> Self {
        AddressSeats {
            max,
            taken: Arc::default(),
        }
    }

    /// A seat for `ip`, or `None` if it has `max` already (never with `max == 0`).
    fn take(&self, ip: IpAddr) -> Option<AddressSeat> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let count = taken.entry(ip).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSeat {
            seats: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSeat {
    fn drop(&mut self) {
        let mut taken = self.seats.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = taken.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                taken.remove(&self.ip);
            }
        }
    }
}
