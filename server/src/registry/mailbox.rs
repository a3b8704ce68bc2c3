//! What the registry sends one connection ([`Outbound`]): a bounded queue that costs an idle
//! connection about a hundred bytes.
//!
//! Every connected device has one, and almost all of them stay empty: commands are rare next
//! to readings. A tokio `mpsc` channel allocates its first block of 32 slots and its waker
//! state up front (about 800 bytes a connection, measured with heaptrack); this holds a
//! `VecDeque` that allocates only while something waits in it, and a `Notify`.

use super::Outbound;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

/// Outbound messages queued for one connection, at most this many (a device that does not
/// read its commands is stuck, and more would only pile up).
pub const MAILBOX_CAPACITY: usize = 64;

struct Mailbox {
    queue: Mutex<VecDeque<Outbound>>,
    ready: Notify,
}

/// The registry's end: puts messages in.
#[derive(Clone)]
pub struct MailboxSender(Arc<Mailbox>);

/// The connection's end: takes them out, in order.
pub struct MailboxReceiver(Arc<Mailbox>);

/// The connection has [`MAILBOX_CAPACITY`] messages waiting already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxFull;

/// A new, empty mailbox.
pub fn mailbox() -> (MailboxSender, MailboxReceiver) {
    let shared = Arc::new(Mailbox {
        queue: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
    });
    (MailboxSender(shared.clone()), MailboxReceiver(shared))
}

impl MailboxSender {
    pub fn try_send(&self, message: Outbound) -> Result<(), MailboxFull> {
        let mut queue = self.0.queue.lock();
        if queue.len() >= MAILBOX_CAPACITY {
            return Err(MailboxFull);
        }
        queue.push_back(message);
        drop(queue);
        // Stores a permit if the connection is not waiting right now: it takes the message
        // on its next `recv`.
        self.0.ready.notify_one();
        Ok(())
    }
}

impl MailboxReceiver {
    /// The next message, waiting for one. Cancel-safe: a message is taken out only when it is
    /// returned.
    pub async fn recv(&self) -> Outbound {
        loop {
            if let Some(message) = self.take() {
                return message;
            }
            self.0.ready.notified().await;
        }
    }

    /// The next message if one is waiting.
    #[cfg(test)]
    pub fn try_recv(&self) -> Option<Outbound> {
        self.take()
    }

    fn take(&self) -> Option<Outbound> {
        let mut queue = self.0.queue.lock();
        let message = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            // Emptied: give the memory back, the next command may be hours away.
            *queue = VecDeque::new();
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn messages_come_out_in_order_and_the_queue_is_bounded() {
        let (sender, receiver) = mailbox();
        for i in 0..MAILBOX_CAPACITY {
            sender.try_send(Outbound::Line(i.to_string())).unwrap();
        }
        assert_eq!(
            sender.try_send(Outbound::Line("one too many".into())),
            Err(MailboxFull)
        );
        for i in 0..MAILBOX_CAPACITY {
            assert_eq!(receiver.recv().await, Outbound::Line(i.to_string()));
        }
        assert_eq!(receiver.0.queue.lock().capacity(), 0);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message() {
        let (sender, receiver) = mailbox();
        let waiting = tokio::spawn(async move { receiver.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        sender.try_send(Outbound::TokenRevoked(7)).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, Outbound::TokenRevoked(7));
    }

    #[tokio::test]
    async fn a_receive_given_up_loses_nothing() {
        let (sender, receiver) = mailbox();
        // Started and dropped before anything came, as a `select!` does.
        let _ = tokio::time::timeout(Duration::from_millis(10), receiver.recv()).await;
        sender.try_send(Outbound::Line("later".into())).unwrap();
        assert_eq!(receiver.recv().await, Outbound::Line("later".into()));
    }
}
