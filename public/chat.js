// wasmws chat page: the browser's own WebSocket, JSON frames, everything rendered with textContent.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const statusEl = $('status'), messagesEl = $('messages'), usersEl = $('users'), countEl = $('count');
  const errorEl = $('error'), nameEl = $('name'), textEl = $('text'), joinBtn = $('join'), sendBtn = $('send');
  const path = document.body.dataset.chatPath || '/chat';
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;

  let ws = null;
  let name = '';          // set once the user joined; re-sent after a reconnect
  let joined = false;     // the server listed us in a presence message
  let attempt = 0;        // reconnect attempts since the last successful open
  let timer = null;
  let users = null;       // last presence list (null until the first one after connecting)

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  function updateControls() {
    const open = ws !== null && ws.readyState === WebSocket.OPEN;
    joinBtn.disabled = !open || joined;
    nameEl.disabled = joined;
    textEl.disabled = !open || !joined;
    sendBtn.disabled = !open || !joined;
    textEl.placeholder = joined ? 'say something' : 'join first';
  }

  function addLine(parts, cls) {
    const li = document.createElement('li');
    if (cls) li.className = cls;
    for (const [text, partCls] of parts) {
      const span = document.createElement('span');
      span.className = partCls;
      span.textContent = text; // user data is text, never HTML
      li.append(span);
    }
    const atBottom = messagesEl.scrollTop + messagesEl.clientHeight >= messagesEl.scrollHeight - 8;
    messagesEl.append(li);
    while (messagesEl.children.length > 500) messagesEl.firstElementChild.remove();
    if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  function renderUsers(list) {
    usersEl.replaceChildren(...list.map((u) => {
      const li = document.createElement('li');
      li.textContent = u;
      return li;
    }));
    countEl.textContent = String(list.length);
  }

  // Multiset difference: who joined / left between two presence lists.
  function diff(a, b) {
    const counts = new Map();
    for (const u of b) counts.set(u, (counts.get(u) || 0) + 1);
    const out = [];
    for (const u of a) {
      const n = counts.get(u) || 0;
      if (n > 0) counts.set(u, n - 1); else out.push(u);
    }
    return out;
  }

  function onFrame(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === 'message') {
      const time = new Date(msg.time).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      addLine([[time, 'time'], [String(msg.name), 'name'], [String(msg.text), 'text']], 'message');
    } else if (msg.type === 'presence' && Array.isArray(msg.users)) {
      const list = msg.users.map(String);
      if (users !== null) {
        for (const u of diff(list, users)) addLine([[u + ' joined', '']], 'system');
        for (const u of diff(users, list)) addLine([[u + ' left', '']], 'system');
      }
      users = list;
      renderUsers(list);
      if (name && !joined && list.includes(name)) {
        joined = true;
        showError('');
        updateControls();
        textEl.focus();
      }
    } else if (msg.type === 'error') {
      showError(String(msg.error));
      if (!joined) name = '';
      updateControls();
    }
  }

  function connect() {
    timer = null;
    setStatus('connecting', attempt ? 'reconnecting…' : 'connecting…');
    const sock = new WebSocket(url, 'chat');
    ws = sock;
    sock.onopen = () => {
      attempt = 0;
      users = null;
      setStatus('open', 'connected');
      if (name) sock.send(JSON.stringify({ type: 'join', name })); // rejoin after a reconnect
      updateControls();
    };
    sock.onmessage = onFrame;
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      joined = false;
      updateControls();
      // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 15 s.
      const delay = Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt++;
      const why = ev.code === 1001 ? 'server went away' : ev.code === 1006 ? 'connection lost' : 'closed (' + ev.code + ')';
      setStatus('reconnecting', why + ' — retrying in ' + Math.round(delay / 100) / 10 + ' s');
      timer = setTimeout(connect, delay);
    };
  }

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const n = nameEl.value.trim();
    if (!n || !ws || ws.readyState !== WebSocket.OPEN) return;
    name = n;
    ws.send(JSON.stringify({ type: 'join', name }));
  });

  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = textEl.value;
    if (!text.trim() || !ws || ws.readyState !== WebSocket.OPEN || !joined) return;
    ws.send(JSON.stringify({ type: 'message', text }));
    textEl.value = '';
  });

  // Reconnect at once when the tab comes back online instead of waiting out the backoff.
  window.addEventListener('online', () => {
    if (timer) { clearTimeout(timer); connect(); }
  });

  updateControls();
  connect();
})();
