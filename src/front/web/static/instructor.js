// The instructor page: who is online (polled every two seconds), and the grading
// report for a chosen range as a sortable table and two SVG charts drawn here, so
// the page needs no charting library. Names and other student text go into the
// page with textContent only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const POLL_MS = 2000;
  const MAX_BARS = 40;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(kind, text) {
    const status = $('status');
    status.className = 'status ' + kind;
    status.textContent = text;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (response.status === 401) {
      // The session ended (expired, or the server restarted): back to the login form.
      location.assign('/instructor');
      throw new Error('logged out');
    }
    if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
    return response.json();
  }

  // --- live presence --------------------------------------------------------------

  function drawRooms(rooms) {
    let online = 0;
    const cards = rooms.map((room) => {
      online += room.members.length;
      const card = el('section', 'room');
      card.dataset.room = room.room;
      card.append(el('h3', '', '#' + room.room + ' (' + room.members.length + ')'));
      if (room.members.length === 0) {
        card.append(el('p', 'empty', 'nobody'));
      } else {
        const list = el('ul');
        for (const member of room.members) {
          const item = el('li', 'member', member.nick);
          if (member.instructor) item.append(el('span', 'badge', 'instructor'));
          list.append(item);
        }
        card.append(list);
      }
      return card;
    });
    $('rooms').replaceChildren(...cards);
    $('online-count').textContent = '(' + online + (online === 1 ? ' person)' : ' people)');
  }

  async function pollLive() {
    try {
      const live = await getJson('/instructor/api/live');
      drawRooms(live.rooms);
      setStatus('online', 'Live');
    } catch (err) {
      setStatus('reconnecting', 'Server unreachable; retrying…');
    } finally {
      setTimeout(pollLive, POLL_MS);
    }
  }

  // --- the report -------------------------------------------------------------------

  function localDay(date) {
    const pad = (n) => String(n).padStart(2, '0');
    return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate());
  }

  // The range as the CLI's --since/--until take it: the local days' midnights in UTC.
  function query() {
    const params = new URLSearchParams();
    const since = $('since').value;
    const until = $('until').value;
    if (since) {
      const [y, m, d] = since.split('-').map(Number);
      params.set('since', new Date(y, m - 1, d).toISOString());
    }
    if (until) {
      const [y, m, d] = until.split('-').map(Number);
      params.set('until', new Date(y, m - 1, d + 1).toISOString());
    }
    for (const key of ['room', 'user']) {
      const value = $(key).value.trim();
      if (value) params.set(key, value);
    }
    const text = params.toString();
    return text ? '?' + text : '';
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
  const COLUMNS = [
    { key: 'name', title: 'Student', value: (r) => r.name, text: true },
    { key: 'full_name', title: 'Full name', value: (r) => r.full_name || '', text: true },
    { key: 'messages', title: 'Messages', value: (r) => r.messages },
    { key: 'private_messages', title: 'Private', value: (r) => r.private_messages },
    { key: 'words', title: 'Words', value: (r) => r.words },
    { key: 'online_secs', title: 'Online (min)', value: (r) => Math.round(r.online_secs / 60) },
    { key: 'rooms', title: 'Rooms', value: (r) => r.rooms.map((x) => '#' + x.replace(/^#/, '')).join(' '), text: true },
    { key: 'first_seen', title: 'First seen', value: (r) => r.first_seen, show: (r) => when(r.first_seen), text: true },
    { key: 'last_seen', title: 'Last seen', value: (r) => r.last_seen, show: (r) => when(r.last_seen), text: true },
    { key: 'other_names', title: 'Other names', value: (r) => r.other_names.join(', '), text: true },
  ];
  let rows = [];
  let sortKey = 'messages';
  let sortDesc = true;

  function drawTable() {
    const column = COLUMNS.find((c) => c.key === sortKey);
    const sorted = rows.slice().sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      const order = column.text ? String(x).localeCompare(String(y)) : x - y;
      return sortDesc ? -order : order;
    });
    const head = el('tr');
    for (const c of COLUMNS) {
      const th = el('th', c.key === sortKey ? (sortDesc ? 'sorted-desc' : 'sorted-asc') : '', c.title);
      th.dataset.key = c.key;
      th.addEventListener('click', () => {
        sortDesc = c.key === sortKey ? !sortDesc : !c.text;
        sortKey = c.key;
        drawTable();
      });
      head.append(th);
    }
    $('report').tHead.replaceChildren(head);
    const body = sorted.map((r) => {
      const tr = el('tr');
      for (const c of COLUMNS) tr.append(el('td', c.text ? '' : 'num', String((c.show || c.value)(r))));
      return tr;
    });
    $('report').tBodies[0].replaceChildren(...body);
    $('report-note').textContent = rows.length === 0 ? 'Nobody said anything in this range.' : '';
  }

  // Horizontal bars, most messages first.
  function drawPerStudent() {
    const data = rows
      .slice()
      .sort((a, b) => b.messages - a.messages || a.name.localeCompare(b.name))
      .slice(0, MAX_BARS);
    const width = 480;
    const label = 110;
    const row = 24;
    const height = Math.max(60, data.length * row + 10);
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Messages per student' });
    const max = Math.max(1, ...data.map((r) => r.messages));
    const room = width - label - 40;
    data.forEach((r, i) => {
      const y = 5 + i * row;
      const bar = Math.max(1, (r.messages / max) * room);
      const group = svg('g', { class: 'student', 'data-name': r.name });
      group.append(
        svg('text', { x: label - 6, y: y + 15, 'text-anchor': 'end' }, r.name.length > 16 ? r.name.slice(0, 15) + '…' : r.name),
        svg('rect', { class: 'bar', x: label, y: y + 3, width: bar, height: row - 8, rx: 2 }),
        svg('text', { x: label + bar + 5, y: y + 15, class: 'muted' }, String(r.messages)),
      );
      group.append(svg('title', {}, r.name + ': ' + r.messages + (r.messages === 1 ? ' message' : ' messages')));
      chart.append(group);
    });
    if (data.length === 0) chart.append(svg('text', { x: 10, y: 35, class: 'muted' }, 'No messages in this range.'));
    $('per-student').replaceChildren(chart);
  }

  function bucketLabel(ms, bucket) {
    const d = new Date(ms);
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (bucket < 3600000) return hm;
    if (bucket < 86400000) return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hm;
    return d.toLocaleDateString();
  }

  // Messages per bucket as bars; empty buckets between the first and last count as 0.
  function drawTimeline(timeline) {
    const bucket = timeline.bucket_ms;
    const unit = bucket >= 86400000 ? 'day' : bucket >= 3600000 ? 'hour' : 'minute';
    $('timeline-title').textContent = 'Class messages per ' + unit;
    const counts = new Map(timeline.points.map(([t, n]) => [t, n]));
    const points = [];
    if (timeline.points.length > 0) {
      const first = timeline.points[0][0];
      const last = timeline.points[timeline.points.length - 1][0];
      for (let t = first; t <= last && points.length < 2000; t += bucket) points.push([t, counts.get(t) || 0]);
    }
    const width = 480;
    const height = 220;
    const left = 34;
    const bottom = 24;
    const plotW = width - left - 10;
    const plotH = height - bottom - 12;
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Class messages over time' });
    chart.append(
      svg('line', { class: 'axis', x1: left, y1: 12 + plotH, x2: width - 10, y2: 12 + plotH }),
      svg('line', { class: 'axis', x1: left, y1: 12, x2: left, y2: 12 + plotH }),
    );
    if (points.length === 0) {
      chart.append(svg('text', { x: left + 10, y: 40, class: 'muted' }, 'No messages in this range.'));
      $('timeline').replaceChildren(chart);
      return;
    }
    const max = Math.max(1, ...points.map(([, n]) => n));
    chart.append(
      svg('text', { x: left - 5, y: 20, 'text-anchor': 'end', class: 'muted' }, String(max)),
      svg('text', { x: left - 5, y: 12 + plotH, 'text-anchor': 'end', class: 'muted' }, '0'),
    );
    const step = plotW / points.length;
    points.forEach(([t, n], i) => {
      if (n === 0) return;
      const h = (n / max) * plotH;
      const rect = svg('rect', {
        class: 'bar', x: left + i * step + step * 0.1, y: 12 + plotH - h,
        width: Math.max(1, step * 0.8), height: h,
      });
      rect.append(svg('title', {}, bucketLabel(t, bucket) + ': ' + n));
      chart.append(rect);
    });
    const ticks = points.length === 1 ? [0] : [0, Math.floor((points.length - 1) / 2), points.length - 1];
    for (const i of new Set(ticks)) {
      const anchor = i === 0 ? 'start' : i === points.length - 1 ? 'end' : 'middle';
      const x = i === points.length - 1 ? left + plotW : left + i * step + step / 2;
      chart.append(svg('text', { x, y: height - 6, 'text-anchor': anchor, class: 'muted' }, bucketLabel(points[i][0], bucket)));
    }
    $('timeline').replaceChildren(chart);
  }

  async function loadReport() {
    const q = query();
    $('csv').href = '/instructor/report.csv' + q;
    $('json').href = '/instructor/report.json' + q;
    try {
      const [report, timeline] = await Promise.all([
        getJson('/instructor/report.json' + q),
        getJson('/instructor/api/timeline' + q),
      ]);
      rows = report;
      drawTable();
      drawPerStudent();
      drawTimeline(timeline);
    } catch (err) {
      $('report-note').textContent = 'Could not load the report: ' + err.message;
    }
  }

  $('range').addEventListener('submit', (event) => {
    event.preventDefault();
    loadReport();
  });
  const today = localDay(new Date());
  $('since').value = today;
  $('until').value = today;
  pollLive();
  loadReport();
  // The report follows the class too, a little less often than presence.
  setInterval(loadReport, 15000);
})();
