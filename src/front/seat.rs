//! Places under the connection limits: every connection holds one per address
//! (`limits.max_per_ip`); while it logs in, one of the handshake budget
//! (`limits.max_pending`, `limits.max_pending_per_ip`); once in, one of
//! `limits.max_clients`. Silent sockets can take only handshake places, never a
//! student's seat.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one connection holds; each place is given back when dropped.
pub struct Seat {
    _address: AddressSeat,
    pending: Option<(Option<OwnedSemaphorePermit>, AddressSeat)>,
    member: Option<OwnedSemaphorePermit>,
}

/// The limits' shared counters.
#[derive(Clone)]
pub struct Seats {
    per_address: AddressSeats,
    pending: Option<Arc<Semaphore>>,
    pending_per_address: AddressSeats,
    members: Arc<Semaphore>,
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
            pending: (max_pending > 0).then(|| Arc::new(Semaphore::new(max_pending))),
            pending_per_address: AddressSeats::new(max_pending_per_ip),
            members: Arc::new(Semaphore::new(max_clients)),
        }
    }

    /// The places of a new connection from `ip`, still logging in.
    pub fn connect(&self, ip: IpAddr) -> Result<Seat, NoSeat> {
        let address = self.per_address.take(ip).ok_or(NoSeat::Address)?;
        let pending = match &self.pending {
            Some(budget) => Some(
                budget
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| NoSeat::Busy)?,
            ),
            None => None,
        };
        let pending_here = self.pending_per_address.take(ip).ok_or(NoSeat::Busy)?;
        Ok(Seat {
            _address: address,
            pending: Some((pending, pending_here)),
            member: None,
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
