// Mock Wechaty puppet-service gateway for cohortbot's end-to-end tests.
//
// Serves wechaty-puppet-mock over gRPC (wechaty-puppet-service PuppetServer, TLS off) so
// python-wechaty connects to it exactly as it would to a real gateway, and takes scripted
// member actions over a small HTTP control channel. Normally started by driver.py.
//
//   node gateway.mjs [--grpc-port N] [--control-port N] [--token T] [--world FILE] [--id-suffix S]
//   env fallbacks: GATEWAY_PORT (8788), CONTROL_PORT (8789),
//                  WECHATY_TOKEN (insecure_cohortbot), GATEWAY_WORLD (file path, or inline JSON)
//
// World (JSON):
//   {"bot": {"id": "bot", "name": "CohortBot"},
//    "contacts": [{"id": "alice", "name": "Alice", "alias": "Alice (TA)"}, ...],
//    "rooms": [{"id": "cohort7@chatroom", "topic": "Cohort 7", "members": ["alice", ...]}]}
//   * room ids must contain '@' (the mock treats an id with '@' as a room); contact ids must not;
//   * `alias` is the member's group alias (roomAlias), the same in every room; a room may
//     override it with "aliases": {"<id>": "<alias>"}; `remark` sets the contact alias;
//   * the bot is added to every room's member list if not listed; optional room "owner".
//   * top level "loggedOut": true: the account starts logged out (waiting for "login").
//   * "notFriend": the contact is not the account's friend, so a private message to it fails
//     as WeChat fails it: "refuse" (the send is answered with an error, nothing recorded as
//     sent) or "notice" (the send is accepted and recorded with delivered: false, echoed, and
//     WeChat's notice then arrives in that private chat from the contact); or an object
//     {"style": "refuse"|"notice", "text": "<error message or notice>", "type": "system"|"text"
//     (the notice's message type: Unknown as wechat4u/padlocal deliver it, or Text),
//     "delayMs": <notice after the send's answer, default 100>}.
//
// Control: POST http://127.0.0.1:<control-port>/ with one JSON command, JSON reply
// ({"ok": true, ...} or {"ok": false, "error": "..."}). `room` defaults to the first room.
//   {"cmd":"say","member":"alice","text":"hi","mentions":["bot"],"room":"..."}
//   {"cmd":"dm","member":"alice","text":"hello bot"}
//   {"cmd":"join","member":"dave","inviter":"alice"}      room-join event (inviter: room owner)
//   {"cmd":"silent_join","member":"dave"}                 member list changes, NO event (QR-code join)
//   {"cmd":"leave","member":"carol"}                      room-leave event (removes self)
//   {"cmd":"flood","member":"alice","count":20,"text":"spam {i}"}   count messages at once; {i} = 1..count
//   {"cmd":"sent"}   -> {"sent": [{id, kind: room|dm, conversationId, text, mentionIdList, ts}, ...]}
//   {"cmd":"clear"}  forget recorded sends
//   {"cmd":"slow_sends","ms":3000}   sends are delivered (recorded, echoed) at once but the
//                    gRPC answer waits ms (a puppet slow to confirm); 0 turns it off
//   {"cmd":"state"}  login state, rooms (topic, members), contacts, number of sends
//   {"cmd":"not_friend","member":"u3","style":"refuse"|"notice","text":"...","type":"text","delayMs":0}
//                    the contact is no friend of the account from now on (as world "notFriend")
//   {"cmd":"befriend","member":"u3"}   the contact is the account's friend again
//   {"cmd":"notice","member":"u3","text":"...","type":"system"|"text"}   WeChat's not-a-friend
//                    notice in that private chat now, whatever the bot sent
//   {"cmd":"refused"} -> {"refused": [{id, conversationId, text, error, ts}, ...]} sends refused
//   {"cmd":"logout","reason":"..."}   the account logs out and stays out (no automatic login on a
//                    new connection) until "login"
//   {"cmd":"scan","qrcode":"...","status":2}   the gateway shows a QR code to scan (scan event;
//                    status: 0 unknown, 1 cancel, 2 waiting (default), 3 scanned, 4 confirmed, 5 timeout)
//   {"cmd":"login"}  the account logs in again (after "logout")
//   {"cmd":"relogin","suffix":"-2"}   the account logs out and back in with every id renumbered
//                    (account, contacts, rooms; same names, aliases, topics and members), as
//                    some puppets do after a re-login; old ids are gone. -> {"ids": {old: new}}
// Ids are renumbered by appending the suffix to a contact id and inserting it before the '@'
// of a room id (cohort7@chatroom -> cohort7-2@chatroom); `--id-suffix S` starts renumbered.
// A member not in the world may be introduced by passing "name" to join / silent_join / dm.
//
// Stdout: one JSON line per event: {"event":"ready",...} once the gRPC and control servers
// listen, then {"event":"bot-sent",...} for each send ({"event":"bot-refused",...} for each
// refused one, {"event":"notice",...} for each not-a-friend notice). Logs go to stderr.
import fs from 'node:fs'
import http from 'node:http'

import * as PUPPET from 'wechaty-puppet'
import { PuppetMock, mock } from 'wechaty-puppet-mock'
import { PuppetServer } from 'wechaty-puppet-service'

const t0 = Date.now()

// ---------------------------------------------------------------- configuration
function parseArgs (argv) {
  const opts = {}
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i])
    if (!m) throw new Error('unexpected argument ' + argv[i])
    opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i]
  }
  return opts
}

const args = parseArgs(process.argv.slice(2))
const GRPC_PORT = Number(args['grpc-port'] || process.env.GATEWAY_PORT || 8788)
const CONTROL_PORT = Number(args['control-port'] || process.env.CONTROL_PORT || 8789)
const TOKEN = args.token || process.env.WECHATY_TOKEN || 'insecure_cohortbot'

const DEFAULT_WORLD = {
  bot: { id: 'bot', name: 'CohortBot' },
  contacts: [
    { id: 'alice', name: 'Alice' },
    { id: 'bob', name: 'Bob', alias: 'Bobby (TA)' },
    { id: 'carol', name: 'Carol' },
    { id: 'dave', name: 'Dave' },
  ],
  rooms: [{ id: 'cohort7@chatroom', topic: 'Cohort 7', members: ['alice', 'bob', 'carol'] }],
}

function loadWorld () {
  const src = args.world || process.env.GATEWAY_WORLD
  if (!src) return DEFAULT_WORLD
  return JSON.parse(src.trim().startsWith('{') ? src : fs.readFileSync(src, 'utf8'))
}

const world = loadWorld()
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sent = [] // every text the bot sent through the puppet
const refused = [] // every private text refused because its contact is not a friend
let slowSendsMs = 0 // the answer to a send waits this long (after the message went out)
const nonFriends = new Map() // contact id -> { style, text, type, delayMs }
const NOTICE_TEXT = '对方开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求，对方验证通过后，才能聊天。'

function nonFriend (spec) {
  const o = typeof spec === 'string' ? { style: spec } : { ...(spec || {}) }
  if (!['refuse', 'notice'].includes(o.style)) throw new Error('notFriend style: "refuse" or "notice"')
  if (o.type !== undefined && !['system', 'text'].includes(o.type)) throw new Error('notice type: "system" or "text"')
  const delayMs = o.delayMs === undefined ? 100 : Number(o.delayMs)
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new Error('delayMs must be a number >= 0')
  return { style: o.style, text: typeof o.text === 'string' ? o.text : undefined, type: o.type || 'system', delayMs }
}

// ---------------------------------------------------------------- puppet
// Subclass of the stock mock puppet:
//  * record every text the bot sends with the mention ids the gRPC client passed
//    (stock messageSendText(conversationId, text) drops mentionIdList);
//  * return the new message id (stock returns undefined -> client gets message id "");
//  * emit the bot's own message back as a message event, as a real puppet does;
//  * return roomAlias for room members (stock never does).
//  * a private message to a contact that is not a friend is refused, or accepted and
//    followed by WeChat's notice in that chat (see "notFriend").
const newMessageId = () => 'm' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8)

class TestPuppetMock extends PuppetMock {
  async messageSendText (conversationId, text, mentionIdList = []) {
    if (!this.isLoggedIn) throw new Error('not logged in')
    const isRoom = /@/.test(conversationId)
    const id = newMessageId()
    const stranger = isRoom ? undefined : nonFriends.get(conversationId)
    if (stranger && stranger.style === 'refuse') {
      const error = stranger.text || `messageSendText(${conversationId}): 开启了朋友验证，你还不是他（她）朋友 (not friend)`
      const rec = { id, conversationId, text, error, ts: Date.now() }
      refused.push(rec)
      out({ event: 'bot-refused', ...rec })
      throw new Error(error)
    }
    const rec = { id, kind: isRoom ? 'room' : 'dm', conversationId, text, mentionIdList: [...(mentionIdList || [])], ts: Date.now() }
    if (stranger) rec.delivered = false
    sent.push(rec)
    out({ event: 'bot-sent', ...rec })
    const payload = {
      id,
      talkerId: this.currentUserId,
      timestamp: rec.ts,
      type: PUPPET.types.Message.Text,
      text,
      ...(isRoom ? { roomId: conversationId, mentionIdList: rec.mentionIdList } : { listenerId: conversationId }),
    }
    this.mocker.MessageMock.create(payload) // caches the payload for messagePayload()
    this.emit('message', { messageId: id })
    if (stranger) setTimeout(() => this.postNotice(conversationId, stranger), stranger.delayMs)
    if (slowSendsMs > 0) await new Promise(resolve => setTimeout(resolve, slowSendsMs))
    return id
  }

  // A file (the report's picture): recorded with its name and size, not echoed.
  async messageSendFile (conversationId, file) {
    if (!this.isLoggedIn) throw new Error('not logged in')
    const isRoom = /@/.test(conversationId)
    const id = newMessageId()
    const buffer = await file.toBuffer()
    const rec = { id, kind: isRoom ? 'room' : 'dm', conversationId, text: '', file: { name: file.name, size: buffer.length, head: buffer.subarray(0, 8).toString('hex') }, mentionIdList: [], ts: Date.now() }
    sent.push(rec)
    out({ event: 'bot-sent', ...rec })
    return id
  }

  // WeChat's notice in a contact's private chat, from the contact, as wechat4u and padlocal
  // deliver it (a system message: type Unknown), or as a text.
  postNotice (contactId, { text, type } = {}) {
    if (!this.isLoggedIn) return
    const id = newMessageId()
    const payload = {
      id,
      talkerId: contactId,
      listenerId: this.currentUserId,
      timestamp: Date.now(),
      type: type === 'text' ? PUPPET.types.Message.Text : PUPPET.types.Message.Unknown,
      text: text || NOTICE_TEXT,
    }
    this.mocker.MessageMock.create(payload)
    out({ event: 'notice', id, contactId, text: payload.text })
    this.emit('message', { messageId: id })
  }

  async roomMemberRawPayload (roomId, contactId) {
    const p = await super.roomMemberRawPayload(roomId, contactId)
    return { ...p, roomAlias: roomAliasOf(roomId, contactId) }
  }
}

const mocker = new mock.Mocker()
const puppet = new TestPuppetMock({ mocker })

// ---------------------------------------------------------------- world
const contacts = new Map() // id -> ContactMock
const aliases = new Map() // contact id -> roomAlias
const rooms = new Map() // room id -> { mock, aliases }

function createContact ({ id, name, alias, remark, notFriend }) {
  if (!id || typeof id !== 'string') throw new Error('contact needs a string id')
  if (id.includes('@')) throw new Error(`contact id ${id} must not contain '@' (that marks a room)`)
  if (contacts.has(id)) throw new Error('duplicate contact ' + id)
  const c = mocker.createContact({
    id,
    name: name || id,
    alias: remark || undefined,
    avatar: '',
    address: '',
    city: '',
    province: '',
    phone: [],
    signature: '',
  })
  contacts.set(id, c)
  if (alias) aliases.set(id, alias)
  if (notFriend) nonFriends.set(id, nonFriend(notFriend))
  return c
}

function roomAliasOf (roomId, contactId) {
  const r = rooms.get(roomId)
  return (r && r.aliases[contactId]) || aliases.get(contactId) || ''
}

const renumber = (id, suffix) => id.includes('@') ? id.replace('@', suffix + '@') : id + suffix

// The world with every id renumbered (names, aliases, topics, members kept).
function renumberWorld (w, suffix) {
  if (!suffix) return w
  const re = (id) => renumber(id, suffix)
  const b = w.bot || DEFAULT_WORLD.bot
  return {
    bot: { ...b, id: re(b.id) },
    contacts: (w.contacts || []).map(c => ({ ...c, id: re(c.id) })),
    rooms: (w.rooms || []).map(r => ({
      ...r,
      id: re(r.id),
      members: (r.members || []).map(re),
      ...(r.owner ? { owner: re(r.owner) } : {}),
      ...(r.aliases ? { aliases: Object.fromEntries(Object.entries(r.aliases).map(([k, v]) => [re(k), v])) } : {}),
    })),
  }
}

let bot // the bot's ContactMock
let FIRST_ROOM

function buildWorld (w) {
  const BOT = w.bot || DEFAULT_WORLD.bot
  bot = createContact(BOT)
  for (const c of w.contacts || []) createContact(c)
  if (!(w.rooms || []).length) throw new Error('world needs at least one room')
  for (const r of w.rooms) {
    if (!r.id || !r.id.includes('@')) throw new Error(`room id ${r.id} must contain '@'`)
    if (rooms.has(r.id)) throw new Error('duplicate room ' + r.id)
    const members = [...(r.members || [])]
    if (!members.includes(bot.id)) members.unshift(bot.id)
    for (const m of members) if (!contacts.has(m)) throw new Error(`room ${r.id}: unknown member ${m}`)
    const owner = r.owner || members.find(m => m !== bot.id) || bot.id
    const roomMock = mocker.createRoom({
      id: r.id,
      topic: r.topic || r.id,
      memberIdList: members,
      adminIdList: [],
      ownerId: owner,
      avatar: '',
    })
    rooms.set(r.id, { mock: roomMock, aliases: { ...(r.aliases || {}) } })
  }
  FIRST_ROOM = w.rooms[0].id
}

// The world as it is now (joins, leaves, contacts introduced since), for a renumbering.
function worldNow () {
  return {
    bot: { id: bot.id, name: bot.payload.name },
    contacts: [...contacts.values()].filter(c => c.id !== bot.id).map(c => ({
      id: c.id, name: c.payload.name, ...(c.payload.alias ? { remark: c.payload.alias } : {}), ...(aliases.get(c.id) ? { alias: aliases.get(c.id) } : {}),
      ...(nonFriends.has(c.id) ? { notFriend: nonFriends.get(c.id) } : {}),
    })),
    rooms: [...rooms.values()].map(({ mock: r, aliases: a }) => ({
      id: r.id, topic: r.payload.topic, owner: r.payload.ownerId, members: [...r.payload.memberIdList], aliases: { ...a },
    })),
  }
}

// The account logs out; everyone and every group comes back under new ids; it logs in again.
async function relogin (suffix) {
  if (typeof suffix !== 'string' || !suffix || suffix.includes('@')) throw new Error('suffix: a non-empty string without @')
  const before = worldNow()
  const ids = Object.fromEntries([before.bot.id, ...before.contacts.map(c => c.id), ...before.rooms.map(r => r.id)].map(id => [id, renumber(id, suffix)]))
  await puppet.logout('relogin')
  for (const id of rooms.keys()) {
    mocker.cacheRoomPayload.delete(id)
    await markRoomDirty(id)
  }
  for (const id of contacts.keys()) {
    mocker.cacheContactPayload.delete(id)
    await Promise.resolve(puppet.contactPayloadDirty(id)).catch(() => {})
  }
  contacts.clear()
  aliases.clear()
  nonFriends.clear()
  rooms.clear()
  buildWorld(renumberWorld(before, suffix))
  mocker.login(bot)
  return ids
}

buildWorld(renumberWorld(world, args['id-suffix'] || ''))

// Mocker "environments" run on every puppet start(). python-wechaty's start() calls the
// gRPC stop() and then start(); stop() logs the bot out, so log it in again on each start.
let stayLoggedOut = Boolean(world.loggedOut) // after a "logout" command, until "login"
mocker.use(function loginBot (m) {
  if (!m.puppet.isLoggedIn && !stayLoggedOut) m.login(bot)
  return () => {}
})

// ---------------------------------------------------------------- control commands
function contact (id, name) {
  if (typeof id !== 'string' || !id) throw new Error('member id required')
  if (!contacts.has(id)) {
    if (!name) throw new Error('unknown member ' + id + ' (pass "name" to create it)')
    createContact({ id, name })
  }
  return contacts.get(id)
}

function room (id) {
  const r = rooms.get(id || FIRST_ROOM)
  if (!r) throw new Error('unknown room ' + id)
  return r.mock
}

function requireMember (r, id) {
  if (!r.payload.memberIdList.includes(id)) throw new Error(`${id} is not a member of ${r.id}`)
}

async function markRoomDirty (roomId) {
  await puppet.roomPayloadDirty(roomId).catch(() => {})
  await puppet.roomMemberPayloadDirty(roomId).catch(() => {})
}

const tick = () => new Promise(resolve => setImmediate(resolve))

async function handle (c) {
  switch (c.cmd) {
    case 'say': {
      const r = room(c.room)
      const who = contact(c.member)
      requireMember(r, who.id)
      if (typeof c.text !== 'string') throw new Error('text required')
      who.say(c.text, (c.mentions || []).map(id => contact(id))).to(r)
      return { ok: true }
    }
    case 'dm': {
      if (typeof c.text !== 'string') throw new Error('text required')
      contact(c.member, c.name).say(c.text).to(bot)
      return { ok: true }
    }
    case 'join':
    case 'silent_join': {
      const r = room(c.room)
      const who = contact(c.member, c.name)
      if (r.payload.memberIdList.includes(who.id)) throw new Error(`${who.id} is already in ${r.id}`)
      if (c.alias) rooms.get(r.id).aliases[who.id] = c.alias
      if (c.cmd === 'join') {
        const inviter = contact(c.inviter || r.payload.ownerId)
        await markRoomDirty(r.id)
        r.add(who).by(inviter) // pushes onto memberIdList, emits room-join
      } else {
        r.payload.memberIdList.push(who.id) // QR-code join: no event at all
        await markRoomDirty(r.id) // drop the gateway's cached room payload
      }
      return { ok: true, members: [...r.payload.memberIdList] }
    }
    case 'leave': {
      const r = room(c.room)
      const who = contact(c.member)
      requireMember(r, who.id)
      await markRoomDirty(r.id)
      r.remove(who).by(contact(c.remover || who.id)) // splices memberIdList, emits room-leave
      return { ok: true, members: [...r.payload.memberIdList] }
    }
    case 'flood': {
      const r = room(c.room)
      const who = contact(c.member)
      requireMember(r, who.id)
      const count = Number(c.count)
      if (!Number.isInteger(count) || count < 1) throw new Error('count must be a positive integer')
      const text = typeof c.text === 'string' ? c.text : 'flood {i}'
      for (let i = 1; i <= count; i++) {
        who.say(text.replaceAll('{i}', String(i))).to(r)
        await tick() // keep order, let the event stream flush, but no real delay
      }
      return { ok: true, count }
    }
    case 'sent':
      return { ok: true, sent }
    case 'clear':
      sent.length = 0
      refused.length = 0
      return { ok: true }
    case 'slow_sends': {
      const ms = Number(c.ms)
      if (!Number.isFinite(ms) || ms < 0) throw new Error('ms must be a number >= 0')
      slowSendsMs = ms
      return { ok: true }
    }
    case 'not_friend': {
      const who = contact(c.member)
      nonFriends.set(who.id, nonFriend({ style: c.style, text: c.text, type: c.type, delayMs: c.delayMs }))
      return { ok: true }
    }
    case 'befriend':
      nonFriends.delete(contact(c.member).id)
      return { ok: true }
    case 'notice': {
      const who = contact(c.member)
      if (c.type !== undefined && !['system', 'text'].includes(c.type)) throw new Error('type: "system" or "text"')
      puppet.postNotice(who.id, { text: c.text, type: c.type })
      return { ok: true }
    }
    case 'refused':
      return { ok: true, refused }
    case 'logout': {
      if (!puppet.isLoggedIn) throw new Error('not logged in')
      stayLoggedOut = true
      await puppet.logout(typeof c.reason === 'string' ? c.reason : 'logged out on the phone')
      return { ok: true }
    }
    case 'scan': {
      const status = c.status === undefined ? PUPPET.types.ScanStatus.Waiting : Number(c.status)
      if (!Number.isInteger(status) || status < 0 || status > 5) throw new Error('status: 0..5')
      puppet.emit('scan', { qrcode: typeof c.qrcode === 'string' ? c.qrcode : 'https://login.weixin.qq.com/l/mock', status })
      return { ok: true }
    }
    case 'login': {
      stayLoggedOut = false
      if (puppet.isLoggedIn) throw new Error('already logged in')
      mocker.login(bot)
      return { ok: true }
    }
    case 'relogin':
      return { ok: true, ids: await relogin(c.suffix), bot: bot.id, rooms: [...rooms.keys()] }
    case 'state':
      return {
        ok: true,
        loggedIn: puppet.isLoggedIn,
        bot: bot.id,
        rooms: [...rooms.values()].map(({ mock: r }) => ({
          id: r.id, topic: r.payload.topic, owner: r.payload.ownerId, members: [...r.payload.memberIdList],
        })),
        contacts: [...contacts.values()].map(c => ({
          id: c.id, name: c.payload.name, alias: aliases.get(c.id) || '', friend: !nonFriends.has(c.id),
        })),
        sentCount: sent.length,
      }
    default:
      throw new Error('unknown cmd ' + c.cmd)
  }
}

async function handleSafe (c) {
  try {
    if (!c || typeof c !== 'object') throw new Error('command must be a JSON object')
    return await handle(c)
  } catch (e) {
    return { ok: false, error: String((e && e.message) || e) }
  }
}

const control = http.createServer((req, res) => {
  let body = ''
  req.on('data', d => { body += d })
  req.on('end', async () => {
    let reply
    try {
      reply = await handleSafe(body ? JSON.parse(body) : { cmd: 'state' })
    } catch (e) {
      reply = { ok: false, error: 'bad json: ' + e.message }
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(reply))
  })
})

// ---------------------------------------------------------------- run
const server = new PuppetServer({
  endpoint: `127.0.0.1:${GRPC_PORT}`,
  puppet,
  token: TOKEN,
  tls: { disable: true },
})

let stopping = false
async function shutdown (signal) {
  if (stopping) return
  stopping = true
  setTimeout(() => process.exit(0), 3000).unref() // never hang on the way out
  try { control.close() } catch (e) {}
  try { await server.stop() } catch (e) {}
  try { await puppet.stop() } catch (e) {}
  process.stderr.write(`gateway: stopped on ${signal}\n`)
  process.exit(0)
}
process.on('SIGINT', () => shutdown('SIGINT'))
process.on('SIGTERM', () => shutdown('SIGTERM'))

await puppet.start() // starts the mocker -> loginBot environment
await server.start()
await new Promise((resolve, reject) => {
  control.once('error', reject)
  control.listen(CONTROL_PORT, '127.0.0.1', resolve)
})
out({
  event: 'ready',
  pid: process.pid,
  grpc: `127.0.0.1:${GRPC_PORT}`,
  control: `127.0.0.1:${CONTROL_PORT}`,
  token: TOKEN,
  bot: bot.id,
  rooms: [...rooms.keys()],
  startMs: Date.now() - t0,
})
