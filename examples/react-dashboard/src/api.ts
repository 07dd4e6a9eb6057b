// The service's REST API, through the dev server's proxy (same origin).

export interface User {
  id: number;
  email: string;
  name: string;
  role: string;
}

/** A row of the demo shop's orders table, as order_changes events carry it. */
export interface Order {
  id: number;
  order_number: string;
  status: string;
  payment_status: string;
  total: number;
}

// Rows of order_changes events are typed as Order everywhere (useShopstream's onEvent too).
declare module '@shopstream/client' {
  interface ChannelRows {
    order_changes: Order;
  }
}

/** GET /api/v1/ws/stats, the part the page shows. */
export interface Stats {
  eventsPublished: number;
  lastEventId: string;
}

/** A refused request: the status and the service's {"error", "message"}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, init);
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(res.status, body.error ?? 'http_error', body.message ?? res.statusText);
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}

/** The logged-in user, or null (401). */
export async function me(): Promise<User | null> {
  try {
    return (await request<{ user: User }>('/api/auth/me')).user;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function login(email: string, password: string): Promise<User> {
  const body = JSON.stringify({ email, password });
  const init = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body };
  return (await request<{ user: User }>('/api/auth/login', init)).user;
}

export function logout(): Promise<void> {
  return request<void>('/api/auth/logout', { method: 'POST' });
}

export async function stats(): Promise<Stats> {
  return (await request<{ data: Stats }>('/api/v1/ws/stats')).data;
}
