import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { login, me, type User } from './api';
import { Live } from './Live';

// GET /api/auth/me decides between the login form and the live view; a login
// or a 1008 (onLoginRequired) sets that query's data, and the view follows.
export function App() {
  const queryClient = useQueryClient();
  const user = useQuery({ queryKey: ['me'], queryFn: me, staleTime: Infinity, retry: false });
  const setUser = (u: User | null) => queryClient.setQueryData(['me'], u);
  if (user.isPending) return <p>Loading…</p>;
  if (user.isError) return <p role="alert">{user.error.message}</p>;
  if (!user.data) return <Login onLogin={setUser} />;
  return <Live user={user.data} onLoginRequired={() => setUser(null)} />;
}

function Login({ onLogin }: { onLogin: (user: User) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const submit = useMutation({ mutationFn: () => login(email, password), onSuccess: onLogin });
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    submit.mutate();
  };
  return (
    <form id="login" onSubmit={onSubmit}>
      <h1>Log in</h1>
      <label>
        Email <input id="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </label>
      <label>
        Password{' '}
        <input id="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </label>
      <button id="login-submit" type="submit" disabled={submit.isPending}>
        Log in
      </button>
      <p id="login-error" role="alert">
        {submit.error?.message}
      </p>
    </form>
  );
}
