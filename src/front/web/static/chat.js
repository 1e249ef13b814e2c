// The chat page: the line protocol of classchat over a WebSocket, one text frame
// per line. The page follows the server's own prompts ("* ... username", "* ...
// code") rather than a script of its own, so the handshake stays the server's.
//
// Every text from the server or a user goes into the page with textContent, never
// as markup: a message can never become HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = $('log');
  const status = $('status');
  const meLabel = $('me');
  const jump = $('jump');
  const loginForm = $('login');
  const loginPrompt = $('login-prompt');
  const loginError = $('login-error');
  const nameField = $('name-field');
  const nameInput = $('name');
  const codeField = $('code-field');
  const codeInput = $('code');
  const sendForm = $('send');
  const textInput = $('text');
  const offline = $('offline');
  const offlineText = $('offline-text');
  const reconnectButton = $('reconnect');
  const serverName = $('server-name');

  // Lines kept in the page; older ones go, so a long class does not slow the tab.
  const MAX_LINES = 2000;
  // Nick colours: a fixed set of CSS classes, picked by a hash of the name.
  const NICK_COLOURS = 8;

  let ws = null;
  let me = null; // our name once the server has welcomed us
  let savedName = null; // offered again by itself after a reconnect
  let savedCode = null;
  let autoName = false; // whether this connection has offered savedName already
  let autoCode = false;
  let leaving = false; // /quit or a kick: no automatic reconnect
  let farewell = 'Disconnected.'; // what the closed bar says after leaving
  let following = true; // whether the history follows the newest line
  let attempts = 0;
  let timer = null;
  let everJoined = false;
  const sent = []; // lines typed, for the arrow keys
  let sentAt = 0;

  // One state at a time in the header: no text hides the badge (while the name
  // form asks, the form itself says where things stand).
  function setStatus(kind, text) {
    status.className = 'status ' + kind;
    status.textContent = text;
    status.hidden = !text;
  }

  // The server names itself in its first line, `* Connected to NAME.`; the page
  // carries no inline script, so this is where the header learns it.
  function setServerName(name) {
    serverName.textContent = name;
    document.title = name + ' · classchat';
  }

  function kindOf(body) {
    if (body.startsWith('* ')) return 'notice';
    if (body.startsWith('! ')) return 'error';
    if (body.startsWith('= ')) return 'answer';
    if (body.startsWith('[PM ')) return 'pm';
    return 'chat';
  }

  function nickColour(nick) {
    let hash = 0;
    for (const ch of nick.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return 'nick-' + (hash % NICK_COLOURS);
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
    following = true;
    jump.hidden = true;
  }

  function span(className, text) {
    const el = document.createElement('span');
    el.className = className;
    el.textContent = text;
    return el;
  }

  // One line in the history. Follows the newest line only while the reader is at
  // the bottom; someone scrolled up to read is left where they are.
  function render(ts, body, kind) {
    const follow = following || atBottom();
    const row = document.createElement('div');
    row.className = 'line ' + kind;
    const time = document.createElement('time');
    time.textContent = ts;
    row.append(time, ' ');
    const colon = body.indexOf(': ');
    if ((kind === 'chat' || kind === 'own') && colon > 0) {
      const nick = body.slice(0, colon);
      row.append(span('nick ' + nickColour(nick), nick + ':'), ' ', span('text', body.slice(colon + 2)));
    } else {
      row.append(span('text', body));
    }
    log.append(row);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (follow) scrollDown();
    else jump.hidden = false;
  }

  function localTime() {
    const d = new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, '0'))
      .join(':');
  }

  function showLogin(prompt, askingCode) {
    loginPrompt.textContent = prompt;
    nameField.hidden = askingCode;
    codeField.hidden = !askingCode;
    loginForm.hidden = false;
    sendForm.hidden = true;
    setStatus('', '');
    (askingCode ? codeInput : nameInput).focus();
  }

  function loginFailed(text) {
    loginError.textContent = text;
    loginError.hidden = false;
    // A refused code is not offered again by itself.
    savedCode = null;
  }

  function joined(name) {
    me = name;
    everJoined = true;
    meLabel.textContent = name;
    loginForm.hidden = true;
    loginError.hidden = true;
    codeInput.value = '';
    sendForm.hidden = false;
    textInput.disabled = false;
    textInput.focus();
    setStatus('online', 'Connected');
  }

  function onLine(raw) {
    const cut = raw.indexOf('] ');
    const ts = raw.startsWith('[') && cut > 0 ? raw.slice(1, cut) : '';
    const body = cut > 0 ? raw.slice(cut + 2) : raw;
    const kind = kindOf(body);
    render(ts, body, kind);
    const text = body.slice(2);
    if (kind === 'error' && me === null) {
      loginFailed(text);
      return;
    }
    if (kind !== 'notice') return;
    const connected = me === null && text.match(/^Connected to (.+)\.$/);
    if (connected) {
      setServerName(connected[1]);
    } else if (me === null && /\busername\b/i.test(text)) {
      if (savedName !== null && !autoName) {
        autoName = true;
        ws.send(savedName);
      } else {
        showLogin(text, false);
      }
    } else if (me === null && /\bcode\b/i.test(text)) {
      if (savedCode !== null && !autoCode) {
        autoCode = true;
        ws.send(savedCode);
      } else {
        showLogin(text, true);
      }
    } else if (text.startsWith('Welcome, ')) {
      joined(text.slice('Welcome, '.length, text.indexOf('!')));
    } else if (me !== null) {
      const renamed = text.match(/^(\S+) is now known as (\S+)$/);
      if (renamed && renamed[1] === me) {
        me = renamed[2];
        savedName = me;
        meLabel.textContent = me;
      }
      if (text.startsWith('Goodbye, ')) {
        leaving = true;
        farewell = 'You left the chat.';
      } else if (text.startsWith('You have been kicked')) {
        leaving = true;
        farewell = 'You were removed from the chat.';
      }
    }
  }

  function connect() {
    clearTimeout(timer);
    offline.hidden = true;
    me = null;
    autoName = false;
    autoCode = false;
    leaving = false;
    farewell = 'Disconnected.';
    setStatus(attempts > 0 ? 'reconnecting' : 'connecting', attempts > 0 ? 'Reconnecting…' : 'Connecting…');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(scheme + '//' + location.host + '/ws');
    ws = socket;
    socket.onopen = () => {
      attempts = 0;
      if (everJoined) render(localTime(), '* (reconnected)', 'local');
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') onLine(event.data);
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      me = null;
      textInput.disabled = true;
      loginForm.hidden = true;
      if (leaving) {
        // One closed state: the input goes, the bar with Reconnect takes its
        // place, and the history still ends on the goodbye.
        setStatus('offline', 'Disconnected');
        sendForm.hidden = true;
        offlineText.textContent = farewell;
        offline.hidden = false;
        reconnectButton.focus();
        return;
      }
      attempts += 1;
      const delay = Math.min(10000, 500 * 2 ** Math.min(attempts, 5));
      setStatus('reconnecting', 'Connection lost. Reconnecting in ' + Math.ceil(delay / 1000) + ' s…');
      timer = setTimeout(connect, delay);
    };
  }

  loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    loginError.hidden = true;
    if (!codeField.hidden) {
      savedCode = codeInput.value;
      autoCode = true;
      ws.send(codeInput.value);
      codeInput.value = '';
    } else {
      savedName = nameInput.value.trim();
      autoName = true;
      ws.send(savedName);
    }
  });

  sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const line = textInput.value;
    if (line.trim() === '' || ws === null || ws.readyState !== WebSocket.OPEN) return;
    ws.send(line);
    if (/^\/quit\b/i.test(line)) leaving = true;
    // The server does not echo our own chat back; show it as chat-client does.
    const chat = !line.startsWith('/') || line.startsWith('//');
    if (chat) render(localTime(), me + ': ' + (line.startsWith('//') ? line.slice(1) : line).trim(), 'own');
    // A password given to /op stays neither on screen nor in the arrow-key history.
    if (!/^\/op\b/i.test(line)) sent.push(line);
    sentAt = sent.length;
    textInput.value = '';
  });

  textInput.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowUp' && sentAt > 0) {
      sentAt -= 1;
    } else if (event.key === 'ArrowDown' && sentAt < sent.length) {
      sentAt += 1;
    } else {
      return;
    }
    event.preventDefault();
    textInput.value = sent[sentAt] ?? '';
  });

  log.addEventListener('scroll', () => {
    following = atBottom();
    if (following) jump.hidden = true;
  });
  // The history's box shrinks when a bar or the phone's keyboard appears; a reader
  // at the bottom stays at the bottom.
  new ResizeObserver(() => {
    if (following) scrollDown();
  }).observe(log);
  jump.addEventListener('click', scrollDown);
  reconnectButton.addEventListener('click', () => {
    attempts = 0;
    connect();
  });

  connect();
})();
