import HPS
import HPSStoreTestSupport
import Testing

@testable import HPSKafka

/// Messages applied to a real hierarchy (the in-process hash map), without a broker.
struct UpdateApplierTests {
    @Test("an applied message's vectors are what lookups return; keys it does not name keep theirs")
    func applied() throws {
        let fixture = try UpdateFixture()
        let applier = UpdateApplier(server: fixture.server)
        let (keys, vectors) = fixture.updates(table: 1, count: 40, seed: 3)
        let untouched = Array(fixture.rows[1].keys[200..<210])
        let before = try fixture.lookup(table: 1, untouched)
        let message = ReceivedUpdate(topic: "hps_et.m.t1", partition: 0, offset: 0,
                                     payload: UpdateMessage(keys: keys, vectors: vectors, vecSize: 3).encoded())
        #expect(try applier.apply([message]) == 40)
        #expect(try fixture.lookup(table: 1, keys) == vectors)
        #expect(try fixture.lookup(table: 1, untouched) == before)
        // Applying it again (at-least-once delivery) changes nothing.
        #expect(try applier.apply([message]) == 40)
        #expect(try fixture.lookup(table: 1, keys) == vectors)
        #expect(applier.counts["hps_et.m.t1"] == { var c = UpdateCounts(); c.messages = 2; c.keys = 80; return c }())
    }

    @Test("later messages of a batch win over earlier ones for the same key")
    func order() throws {
        let fixture = try UpdateFixture()
        let applier = UpdateApplier(server: fixture.server)
        let key = fixture.rows[0].keys[0]
        let messages = (0..<3).map { i in
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: Int64(i),
                           payload: UpdateMessage(keys: [key], vectors: [Float](repeating: Float(i), count: 4), vecSize: 4).encoded())
        }
        try applier.apply(messages)
        #expect(try fixture.lookup(table: 0, [key]) == [2, 2, 2, 2])
    }

    @Test("malformed messages are counted per topic and skipped; the valid ones around them are applied")
    func malformedSkipped() throws {
        let fixture = try UpdateFixture(supportLongLong: false)
        let applier = UpdateApplier(server: fixture.server)
        let good = UpdateMessage(keys: [5], vectors: [1, 2, 3, 4], vecSize: 4).encoded()
        var badMagic = good
        badMagic[0] = 0
        let messages = [
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: 0, payload: badMagic),
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: 1, payload: Array(good.dropLast())),
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: 2,
                           payload: UpdateMessage(keys: [5], vectors: [1, 2, 3], vecSize: 3).encoded()),
            ReceivedUpdate(topic: "hps_et.m.nope", partition: 0, offset: 0, payload: good),
            ReceivedUpdate(topic: "hps_et.other.t0", partition: 0, offset: 0, payload: good),
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: 3,
                           payload: UpdateMessage(keys: [1 << 40], vectors: [1, 2, 3, 4], vecSize: 4).encoded()),
            ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: 4, payload: good),
        ]
        #expect(try applier.apply(messages) == 1)
        #expect(try fixture.lookup(table: 0, [5]) == [1, 2, 3, 4])
        let counts = applier.counts
        #expect(counts["hps_et.m.t0"]?.malformed == 4)
        #expect(counts["hps_et.m.t0"]?.messages == 1)
        #expect(counts["hps_et.m.t0"]?.lastProblem == "key 1099511627776 does not fit the model's 32-bit keys (supportlonglong is false)")
        #expect(counts["hps_et.m.nope"]?.malformed == 1)
        #expect(counts["hps_et.other.t0"]?.lastProblem == "topic hps_et.other.t0 names no table of a served model")
    }

    @Test("the API's update checks the model, table and vector count, naming what is wrong")
    func apiErrors() throws {
        let fixture = try UpdateFixture()
        let keys: [Int64] = [1, 2]
        func update(model: String = "m", table: Int = 0, floats: Int = 8) -> String? {
            do {
                _ = try keys.withUnsafeBufferPointer { k in
                    try [Float](repeating: 1, count: floats).withUnsafeBufferPointer { v in
                        try fixture.server.update(model: model, table: table, keys: k, vectors: v)
                    }
                }
                return nil
            } catch let error as UpdateError {
                return error.description
            } catch {
                return "\(error)"
            }
        }
        #expect(update() == nil)
        #expect(update(model: "x") == "no model named \"x\" is deployed; the models are m")
        #expect(update(table: 2) == "model m has no table \"2\"; its tables are t0, t1 (or their indices 0–1)")
        #expect(update(floats: 7) == "an update of table t0 gave 7 floats for 2 keys of vec size 4; expected 8")
    }

    @Test("a configuration with a Kafka update source is served only where this build follows Kafka")
    func availability() throws {
        let source = "{\"type\": \"kafka_message_queue\", \"brokers\": \"127.0.0.1:1\"}"
        if isKafkaBuilt {
            let fixture = try UpdateFixture(updateSource: source)
            #expect(fixture.server.configuration.updateSource.type == .kafkaMessageQueue)
        } else {
            #expect(throws: StoreError.self) { try UpdateFixture(updateSource: source) }
        }
    }
}
