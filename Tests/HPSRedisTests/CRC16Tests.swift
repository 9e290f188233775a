import Testing

@testable import HPSRedis

struct HashSlotTests {
    @Test("CRC16 XMODEM of the standard check string is 0x31C3")
    func checkValue() {
        #expect(CRC16.checksum(Array("123456789".utf8)) == 0x31C3)
    }

    @Test("keys land in the slots Redis gives them")
    func knownSlots() {
        #expect(HashSlot.slot("foo") == 12182)
        #expect(HashSlot.slot("bar") == 5061)
        #expect(HashSlot.slot("123456789") == 0x31C3)
    }

    @Test("only the hash tag is hashed when the key has one")
    func hashTags() {
        #expect(HashSlot.slot("{user1000}.following") == HashSlot.slot("user1000"))
        #expect(HashSlot.slot("hps_et{m.t/p3}v") == HashSlot.slot("hps_et{m.t/p3}t"))
        // An empty tag is no tag: the whole key is hashed.
        #expect(HashSlot.slot("foo{}{bar}") == Int(CRC16.checksum(Array("foo{}{bar}".utf8))) & 16383)
        // Only the first { and the next } count.
        #expect(HashSlot.slot("foo{{bar}}zap") == HashSlot.slot("{bar"))
    }

    @Test("addresses parse from volatile_db.address")
    func addresses() {
        #expect(NodeAddress.list("127.0.0.1:7000, 127.0.0.1:7001") == [
            NodeAddress(host: "127.0.0.1", port: 7000), NodeAddress(host: "127.0.0.1", port: 7001),
        ])
        #expect(NodeAddress.list("127.0.0.1") == nil)
        #expect(NodeAddress.list("") == nil)
    }

    @Test("MOVED and ASK name the slot and the node")
    func redirections() {
        let from = NodeAddress(host: "10.0.0.1", port: 7000)
        #expect(RedisCluster.redirection("MOVED 3999 127.0.0.1:6381", from: from)
            == .moved(slot: 3999, to: NodeAddress(host: "127.0.0.1", port: 6381)))
        #expect(RedisCluster.redirection("ASK 3999 :6381", from: from)
            == .ask(to: NodeAddress(host: "10.0.0.1", port: 6381)))
        #expect(RedisCluster.redirection("TRYAGAIN Multiple keys request during rehashing of slot", from: from) == .retry)
        #expect(RedisCluster.redirection("ERR unknown command", from: from) == nil)
    }
}
