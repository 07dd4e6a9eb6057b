import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useShopstream } from '@shopstream/client/react';
import type { OrderEvent } from '@shopstream/client';
import { logout, stats, type Order, type User } from './api';

let fetches = 0; // how often the activity query ran: a handful per burst, not one per row

export function Live({ user, onLoginRequired }: { user: User; onLoginRequired: () => void }) {
  const [orders, setOrders] = useState(new Map<number, Order>());
  const [events, setEvents] = useState<OrderEvent[]>([]);
  const { state } = useShopstream(['order_changes'], {
    storage: sessionStorage, // a reload resumes where the page stopped
    onEvent: (ev) => {
      setEvents((list) => [...list, ev]);
      setOrders((rows) => apply(rows, ev));
    },
    onLoginRequired, // 1008 (logged out, session ended): the hook never navigates itself
  });
  // Each order event invalidates ['orders'] and ['orders', id], batched (50 ms):
  // this query refetches after a change, once for a whole burst.
  const activity = useQuery({
    queryKey: ['orders', 'activity'],
    queryFn: async () => ({ ...(await stats()), fetch: ++fetches }),
  });
  return (
    <main>
      <header>
        <output id="state" className={`conn ${state}`}>{state}</output> {/* connecting, live, reconnecting, login-required */}
        <span>{user.email}</span>
        <button id="logout" onClick={() => void logout()}>Log out</button> {/* the server's 1008 brings the form back */}
      </header>
      <p id="activity">
        Last event <b data-stat="lastEventId">{activity.data?.lastEventId}</b>, fetch{' '}
        <b data-stat="fetch">{activity.data?.fetch}</b>
      </p>
      <table id="orders">
        <caption>Orders changed since the page opened</caption>
        <tbody>
          {[...orders.values()].map((o) => (
            <tr key={o.id} data-id={o.id}>
              <td>{o.order_number}</td>
              <td className="status">{o.status}</td>
              <td>{o.payment_status}</td>
              <td>{o.total}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ol id="events">
        {events.map((ev) => (
          <li key={ev.id} data-id={ev.id} data-event={ev.event} data-order={ev.data.id} data-status={ev.data.status}>
            {ev.id} {ev.event} {ev.data.order_number} {ev.data.status}
          </li>
        ))}
      </ol>
    </main>
  );
}

function apply(rows: Map<number, Order>, ev: OrderEvent): Map<number, Order> {
  const next = new Map(rows);
  if (ev.event === 'order:truncated') next.clear();
  else if (ev.event === 'order:deleted') next.delete(ev.data.id);
  else next.set(ev.data.id, ev.data);
  return next;
}
