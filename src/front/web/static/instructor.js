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
  // The timeline's widest bar, and a label character's width, in chart units.
  const MAX_BAR = 24;
  const LABEL_CHAR = 6.2;

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
      if (room.tools) drawTools(card, room.tools);
      return card;
    });
    $('rooms').replaceChildren(...cards);
    $('online-count').textContent = '(' + online + (online === 1 ? ' person)' : ' people)');
  }

  // A room's class tools: the session it runs, the hand queue in order with how
  // long each has waited, the open poll's counts and the questions with authors.
  function drawTools(card, tools) {
    const now = Date.now();
    const waited = (since) => Math.max(0, Math.floor((now - since) / 60000)) + ' min';
    if (tools.session) {
      const title = tools.session.title ? tools.session.title + ', ' : '';
      card.append(el('p', 'session', 'Session: ' + title + 'since ' + minute(new Date(tools.session.since))));
    }
    if (tools.hands.length > 0) {
      card.append(el('h4', '', 'Hands up (' + tools.hands.length + ')'));
      const queue = el('ol', 'hands');
      for (const hand of tools.hands) {
        const item = el('li', 'hand', hand.nick + ' · ' + waited(hand.since));
        if (hand.text) item.append(el('span', 'note', ': ' + hand.text));
        queue.append(item);
      }
      card.append(queue);
    }
    if (tools.poll) {
      const poll = tools.poll;
      card.append(el('h4', '', 'Poll ' + poll.number + ': ' + poll.question));
      const counts = el('ol', 'poll');
      for (const [choice, votes] of poll.counts) counts.append(el('li', '', choice + ': ' + votes));
      card.append(counts);
    }
    if (tools.questions.length > 0) {
      card.append(el('h4', '', 'Questions'));
      const list = el('ul', 'questions');
      for (const q of tools.questions.slice().reverse()) {
        const item = el('li', 'question', q.text);
        item.append(el('span', 'note', ' [from ' + q.from + ', ' + minute(new Date(q.at)).slice(11) + ']'));
        list.append(item);
      }
      card.append(list);
    }
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

  const pad = (n) => String(n).padStart(2, '0');
  // The page's one time format: local, `YYYY-MM-DD HH:MM` (or the day alone).
  const day = (d) => d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  const minute = (d) => day(d) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes());
  const when = (iso) => (iso ? minute(new Date(iso)) : '');

  // Online time in minutes with one decimal; a few seconds read "<0.1", not 0.
  function minutes(secs, row) {
    // Under a second online still shows, as "<0.1": the report's seconds are whole.
    if (secs <= 0 && !(row && row.last_seen > row.first_seen)) return '0';
    if (secs < 6) return '<0.1';
    return (secs / 60).toFixed(1);
  }

  // `1h 02m 03s` as the report command prints it, for the cell's tooltip.
  function duration(secs) {
    const h = Math.floor(secs / 3600);
    const m = Math.floor(secs / 60) % 60;
    const s = secs % 60;
    if (h > 0) return h + 'h ' + pad(m) + 'm ' + pad(s) + 's';
    if (m > 0) return m + 'm ' + pad(s) + 's';
    return s + 's';
  }

  // The columns of report.csv, in its order, under readable titles.
  const COLUMNS = [
    { key: 'name', title: 'Student', value: (r) => r.name, text: true },
    { key: 'full_name', title: 'Full name', value: (r) => r.full_name || '', text: true, optional: true },
    { key: 'messages', title: 'Messages', value: (r) => r.messages },
    { key: 'private_messages', title: 'Private', value: (r) => r.private_messages },
    { key: 'words', title: 'Words', value: (r) => r.words },
    { key: 'rooms', title: 'Rooms', value: (r) => r.rooms.map((x) => '#' + x.replace(/^#/, '')).join(' '), text: true, wrap: true },
    { key: 'first_seen', title: 'First seen', value: (r) => r.first_seen, show: (r) => when(r.first_seen), text: true },
    { key: 'last_seen', title: 'Last seen', value: (r) => r.last_seen, show: (r) => when(r.last_seen), text: true },
    {
      key: 'online_secs', title: 'Online (min)', value: (r) => r.online_secs,
      show: (r) => minutes(r.online_secs, r), tip: (r) => duration(r.online_secs),
    },
    { key: 'instructor', title: 'Instructor', value: (r) => (r.instructor ? 1 : 0), show: (r) => (r.instructor ? 'yes' : ''), flag: true },
    { key: 'moderation_actions', title: 'Moderation actions', value: (r) => r.moderation_actions },
    { key: 'kicked', title: 'Kicked', value: (r) => r.kicked },
    { key: 'muted', title: 'Muted', value: (r) => r.muted },
    { key: 'other_names', title: 'Other names', value: (r) => r.other_names.join(', '), text: true, wrap: true },
    { key: 'hands', title: 'Hands', value: (r) => r.hands },
    { key: 'questions', title: 'Questions', value: (r) => r.questions },
    { key: 'answers', title: 'Poll answers', value: (r) => r.answers.join('; '), text: true, wrap: true },
  ];
  let rows = [];
  let sortKey = 'messages';
  let sortDesc = true;

  function sortBy(key) {
    const column = COLUMNS.find((c) => c.key === key);
    sortDesc = key === sortKey ? !sortDesc : !column.text;
    sortKey = key;
    drawTable();
  }

  function drawTable() {
    // The header is drawn anew (also by the 15 s refresh): keep the keyboard's place.
    const focused = document.activeElement && document.activeElement.closest('#report th');
    const column = COLUMNS.find((c) => c.key === sortKey);
    const sorted = rows.slice().sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      const order = column.text ? String(x).localeCompare(String(y)) : x - y;
      return sortDesc ? -order : order;
    });
    // A class without a roster has no full names: no empty column, as in the CLI.
    const shown = COLUMNS.filter((c) => !c.optional || rows.some((r) => c.value(r) !== ''));
    const head = el('tr');
    for (const c of shown) {
      const sorted = c.key === sortKey;
      const th = el('th', c.text || c.flag ? '' : 'num');
      th.dataset.key = c.key;
      th.scope = 'col';
      if (sorted) th.setAttribute('aria-sort', sortDesc ? 'descending' : 'ascending');
      const button = el('button', 'sort' + (sorted ? (sortDesc ? ' sorted-desc' : ' sorted-asc') : ''), c.title);
      button.type = 'button';
      button.addEventListener('click', () => sortBy(c.key));
      th.append(button);
      head.append(th);
    }
    $('report').tHead.replaceChildren(head);
    if (focused) head.querySelector(`th[data-key="${focused.dataset.key}"] button`)?.focus();
    const body = sorted.map((r) => {
      const tr = el('tr');
      for (const c of shown) {
        const td = el('td', [c.text || c.flag ? '' : 'num', c.wrap ? 'wrap' : ''].join(' ').trim(), String((c.show || c.value)(r)));
        td.dataset.key = c.key;
        if (c.tip) td.title = c.tip(r);
        tr.append(td);
      }
      return tr;
    });
    $('report').tBodies[0].replaceChildren(...body);
    $('report-note').textContent = rows.length === 0 ? 'Nobody said anything in this range.' : '';
    scrolled();
  }

  // A table wider than the screen says so: a hint above it and a shadow on each
  // side that has more columns; the first column stays put (CSS).
  function scrolled() {
    const wrap = $('table-wrap');
    const more = wrap.scrollWidth - wrap.clientWidth;
    $('scroll-hint').hidden = more <= 1;
    $('table-scroll').classList.toggle('more-left', wrap.scrollLeft > 1);
    $('table-scroll').classList.toggle('more-right', wrap.scrollLeft < more - 1);
  }
  $('table-wrap').addEventListener('scroll', scrolled, { passive: true });
  window.addEventListener('resize', scrolled);

  // Horizontal bars, most messages first.
  function drawPerStudent() {
    const data = rows
      .slice()
      .sort((a, b) => b.messages - a.messages || a.name.localeCompare(b.name))
      .slice(0, MAX_BARS);
    const width = chartWidth('per-student');
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

  // A chart's width in its own units: the box's width in pixels, within reason, so
  // that its 11px labels stay 11px on a phone rather than shrinking with the chart.
  function chartWidth(id) {
    return Math.round(Math.max(280, Math.min(480, $(id).clientWidth || 480)));
  }

  function bucketLabel(ms, bucket) {
    const d = new Date(ms);
    return bucket < 86400000 ? minute(d) : day(d);
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
    const width = chartWidth('timeline');
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
    // Bars no wider than MAX_BAR, however few the buckets: one minute of class is
    // one slim bar, not a wall.
    const step = plotW / points.length;
    const barW = Math.max(1, Math.min(MAX_BAR, step * 0.8));
    const centre = (i) => left + i * step + step / 2;
    points.forEach(([t, n], i) => {
      if (n === 0) return;
      const h = (n / max) * plotH;
      const rect = svg('rect', {
        class: 'bar', x: centre(i) - barW / 2, y: 12 + plotH - h,
        width: barW, height: h,
      });
      rect.append(svg('title', {}, bucketLabel(t, bucket) + ': ' + n));
      chart.append(rect);
    });
    // Up to three labels under their bars, moved in where they would leave the chart.
    // As many as fit side by side (a phone has room for two).
    const labelW = bucketLabel(points[0][0], bucket).length * LABEL_CHAR;
    const fit = Math.floor((width - 6) / (labelW + 12));
    const last = points.length - 1;
    const ticks = last === 0 || fit < 2 ? [0] : fit < 3 ? [0, last] : [0, Math.floor(last / 2), last];
    for (const i of new Set(ticks)) {
      const text = bucketLabel(points[i][0], bucket);
      const half = (text.length * LABEL_CHAR) / 2;
      const x = Math.min(width - 4 - half, Math.max(half + 2, centre(i)));
      chart.append(svg('text', { x, y: height - 6, 'text-anchor': 'middle', class: 'muted tick' }, text));
    }
    $('timeline').replaceChildren(chart);
  }

  let lastTimeline = { bucket_ms: 60000, points: [] };
  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      drawPerStudent();
      drawTimeline(lastTimeline);
    }, 150);
  });

  // Attendance: students down, sessions across, as the gradebook CSV has them.
  function drawAttendance(grid) {
    const table = $('attendance');
    const head = el('tr');
    head.append(el('th', '', 'Student'));
    for (const session of grid.sessions) head.append(el('th', 'session', session));
    head.append(el('th', '', 'Attended'));
    table.tHead.replaceChildren(head);
    const body = grid.students.map((student) => {
      const row = el('tr');
      row.dataset.name = student.name;
      row.append(el('td', '', student.full_name ? student.name + ' (' + student.full_name + ')' : student.name));
      for (const present of student.present) {
        const cell = el('td', present ? 'present' : 'absent', present ? '✓' : '·');
        cell.title = present ? 'present' : 'absent';
        row.append(cell);
      }
      row.append(el('td', 'count', String(student.present.filter(Boolean).length)));
      return row;
    });
    table.tBodies[0].replaceChildren(...body);
    $('attendance-note').textContent = grid.sessions.length === 0
      ? 'No class sessions in this range: put the timetable in [[class.sessions]], or run one with /session start.'
      : '';
  }

  async function loadReport() {
    const q = query();
    $('csv').href = '/instructor/report.csv' + q;
    $('json').href = '/instructor/report.json' + q;
    $('gradebook').href = '/instructor/attendance.csv' + q;
    try {
      const [report, timeline, grid] = await Promise.all([
        getJson('/instructor/report.json' + q),
        getJson('/instructor/api/timeline' + q),
        getJson('/instructor/api/attendance' + q),
      ]);
      rows = report;
      lastTimeline = timeline;
      drawTable();
      drawPerStudent();
      drawTimeline(timeline);
      drawAttendance(grid);
    } catch (err) {
      $('report-note').textContent = 'Could not load the report: ' + err.message;
    }
  }

  $('range').addEventListener('submit', (event) => {
    event.preventDefault();
    loadReport();
  });
  // Which zone "local" is, so that nobody has to guess when comparing with the CSV.
  const offset = -new Date().getTimezoneOffset();
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'this computer\'s zone';
  $('zone').textContent = 'Times on this page are local, ' + zone + ' (UTC' + (offset < 0 ? '−' : '+') +
    pad(Math.floor(Math.abs(offset) / 60)) + ':' + pad(Math.abs(offset) % 60) + '), as YYYY-MM-DD HH:MM.';
  const today = day(new Date());
  $('since').value = today;
  $('until').value = today;
  pollLive();
  loadReport();
  // The report follows the class too, a little less often than presence.
  setInterval(loadReport, 15000);
})();
